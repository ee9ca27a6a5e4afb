"""The engine's "brain" behind a swappable :class:`Responder` interface.

Two implementations:

- ``switchboard_engine.agent.UnderstandingResponder`` (the default of ``switchboard engine``):
  transcribes the caller with Whisper and decides from the session's tools.
- :class:`ScriptedResponder` (``--scenario``/``--scripted``, and the e2e tests): SCRIPTED,
  it does not listen to the audio. It reports the scenario's next transcript for each
  committed caller turn and answers from the scenario.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from switchboard_engine.scenario import Scenario, ScriptedTurn

#: ``response.create`` instructions that force an exact line (greetings, fillers, /say).
SAY_EXACTLY = re.compile(r'Say exactly this and nothing else:\s*"(?P<text>.*)"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class ReplyInput:
    """What the reply answers: the newest caller input not yet answered.

    ``kind``: ``audio`` (a committed caller turn; ``turn_index`` counts from 0),
    ``text`` (a user ``input_text`` message), ``tool_output`` (a
    ``function_call_output``; ``tool_name`` and ``tool_arguments`` are the call's),
    ``idle_timeout`` (server VAD ``idle_timeout_ms`` fired) or ``none``.
    """

    kind: Literal["audio", "text", "tool_output", "idle_timeout", "none"]
    text: str = ""
    turn_index: int | None = None
    tool_name: str | None = None
    tool_output: str | None = None
    tool_arguments: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """Everything a responder may use: instructions (response-level ones win), the
    session's function tools (names, and full definitions in ``tools``), ``tool_choice``
    (``forced_tool`` when it names one function) and the input to answer."""

    instructions: str
    input: ReplyInput
    tool_names: tuple[str, ...] = ()
    tool_choice: str = "auto"
    history: tuple[str, ...] = field(default_factory=tuple)
    tools: tuple[dict[str, Any], ...] = ()
    forced_tool: str | None = None
    session_instructions: str = ""


@dataclass(frozen=True, slots=True)
class FunctionCallReply:
    """A function call: ``name`` and ``arguments`` (a JSON object, sent as a string)."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """Speak ``say`` (if any) first, then make ``function_call`` (if any).

    ``answers_input`` is False for replies that do not consume the pending caller input
    (e.g. a forced line such as a greeting or a filler).
    """

    say: str | None = None
    function_call: FunctionCallReply | None = None
    answers_input: bool = True


class Responder(Protocol):
    """Transcribes caller turns and decides replies. Stateful per connection."""

    async def transcribe(self, audio: bytes, turn_index: int, prompt: str | None = None) -> str:
        """Transcript of one committed caller turn (``audio``: 8 kHz μ-law; ``prompt``:
        the session's transcription prompt, if any)."""
        ...

    async def respond(self, request: ReplyRequest) -> Reply:
        """The reply to ``request.input``."""
        ...


def _describe(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


class ScriptedResponder:
    """SCRIPTED responder reading a :class:`Scenario` (no ASR, no language model)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def _turn(self, index: int | None) -> ScriptedTurn | None:
        if index is None or not 0 <= index < len(self.scenario.turns):
            return None
        return self.scenario.turns[index]

    async def transcribe(self, audio: bytes, turn_index: int, prompt: str | None = None) -> str:
        """SCRIPTED: the scenario's transcript for turn ``turn_index``; audio is ignored."""
        turn = self._turn(turn_index)
        return turn.transcript if turn else self.scenario.unscripted_transcript

    async def respond(self, request: ReplyRequest) -> Reply:
        match = SAY_EXACTLY.search(request.instructions or "")
        if match:
            return Reply(say=match.group("text"), answers_input=False)
        inp = request.input
        if inp.kind == "audio":
            return self._turn_reply(self._turn(inp.turn_index), request)
        if inp.kind == "text":
            wanted = _normalise(inp.text)
            for turn in self.scenario.turns:
                if _normalise(turn.transcript) == wanted:
                    return self._turn_reply(turn, request)
            return Reply(say=self.scenario.fallback)
        if inp.kind == "tool_output":
            return Reply(say=self.after_tool(inp.tool_name or "", inp.tool_output or ""))
        if inp.kind == "idle_timeout":
            return Reply(say=self.scenario.idle_prompt)
        return Reply(say=self.scenario.greeting)

    def _turn_reply(self, turn: ScriptedTurn | None, request: ReplyRequest) -> Reply:
        if turn is None:
            return Reply(say=self.scenario.fallback)
        call = None
        fc = turn.function_call
        if fc and request.tool_choice != "none" and fc.name in request.tool_names:
            call = FunctionCallReply(fc.name, dict(fc.arguments))
        if call is None and not turn.say:
            return Reply(say=self.scenario.fallback)
        return Reply(say=turn.say, function_call=call)

    def after_tool(self, tool_name: str, output: str) -> str:
        """The spoken reply to a function_call_output (see :class:`Scenario`.after_tool)."""
        try:
            data: Any = json.loads(output)
        except ValueError:
            data = output
        if isinstance(data, dict) and data.get("error"):
            err = data["error"]
            message = err.get("message") if isinstance(err, dict) else err
            return f"I'm sorry, something went wrong: {_describe(message or err)}."
        template = self.scenario.after_tool.get(tool_name)
        if template is not None and isinstance(data, dict):
            try:
                return template.format_map({k: _describe(v) for k, v in data.items()})
            except (KeyError, IndexError, ValueError):
                pass
        elif template is not None and "{" not in template:
            return template
        if isinstance(data, dict) and data:
            facts = ", ".join(f"{k.replace('_', ' ')} is {_describe(v)}" for k, v in data.items())
            return f"Here is what I found: {facts}."
        return f"Here is what I found: {_describe(data)}." if data else "Done."


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())
