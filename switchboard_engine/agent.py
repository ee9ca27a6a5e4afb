"""The offline agent: a :class:`~switchboard_engine.responder.Responder` that hears and understands.

:class:`UnderstandingResponder` transcribes each committed caller turn with the
process-wide Whisper model (``switchboard_engine.asr``) and decides what to do with the
deterministic understanding (``switchboard_engine.understanding``) over the session's own
``tools``, helped by the hints of the flow the session matches (``switchboard_engine.hints``).
One responder per connection (it keeps the dialogue state: a pending question, the last
thing said); one :class:`AgentResources` per process (the model, the flows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows import FLOWS_DIR
from switchboard_engine.asr import (
    AsrBusyError,
    AsrConfig,
    Transcript,
    WhisperTranscriber,
    shared_transcriber,
)
from switchboard_engine.hints import FlowHints, FlowMatch, recognition_prompt, tool_specs
from switchboard_engine.numbers import find_numbers, tokens
from switchboard_engine.responder import SAY_EXACTLY, FunctionCallReply, Reply, ReplyRequest
from switchboard_engine.understanding import (
    Context,
    Decision,
    Heard,
    Understanding,
    context_from_instructions,
)

log = logging.getLogger(__name__)

DEFAULT_GREETING = "Hello! How can I help you today?"
IDLE_PROMPT = "Are you still there?"
#: Transcriptions (confidence, token probabilities) an agent remembers until its decision.
CONFIDENCE_MEMORY = 8


def heard_of(transcript: Transcript) -> Heard:
    """What the understanding needs of a transcription: its confidence, each number in it
    with the lowest probability of its tokens, the other beam hypotheses."""
    probs = transcript.token_confidence()
    numbers = tuple(
        (n.digits, min(probs[n.start : n.end], default=0.0))
        for n in find_numbers(tokens(transcript.text))
    )
    return Heard(transcript.confidence, numbers, transcript.alternatives, transcript.spelled)


def unsure(transcript: Transcript) -> Transcript:
    """``transcript`` with every token's probability 0: none of its numbers is acted on
    without a read-back. For a reading heard with the flow's vocabulary as the prompt,
    which Whisper may copy (example numbers included) on unclear audio."""
    return dataclasses.replace(
        transcript, pieces=tuple((p, 0.0) for p, _ in transcript.pieces), spelled=""
    )


def _instead(u: Understanding, transcript: Transcript) -> tuple[str, Heard] | None:
    """When ``u`` would say it did not understand ``transcript``: the first other beam
    hypothesis it would act on (call or ask), with how it was heard (its numbers carry no
    token probabilities, so they are always read back first); else None."""
    if not u.preview(transcript.text, heard=heard_of(transcript)).missed:
        return None
    other = Heard(transcript.confidence, (), transcript.alternatives, transcript.spelled)
    for alt in transcript.alternatives:
        if alt and u.preview(alt, heard=other).action in ("call", "ask"):
            return alt, other
    return None


def understood(u: Understanding, transcript: Transcript) -> bool:
    """True unless ``u`` would say it did not understand ``transcript`` and none of its
    other beam hypotheses would be acted on (call or ask)."""
    return (
        not u.preview(transcript.text, heard=heard_of(transcript)).missed
        or _instead(u, transcript) is not None
    )


def decide_heard(
    u: Understanding,
    transcript: Transcript,
    *,
    tool_choice: str = "auto",
    forced_tool: str | None = None,
) -> Decision:
    """Decide a transcription: its text, or, when that is not understood at all, the
    first other beam hypothesis that asks or calls (:func:`_instead`)."""
    instead = _instead(u, transcript)
    if instead is not None:
        alt, other = instead
        log.info("decided on beam hypothesis %r instead of %r", alt, transcript.text)
        return u.decide(alt, tool_choice=tool_choice, forced_tool=forced_tool, heard=other)
    heard = heard_of(transcript)
    return u.decide(transcript.text, tool_choice=tool_choice, forced_tool=forced_tool, heard=heard)


@dataclass(slots=True)
class AgentResources:
    """What every session of one engine process shares: the speech model (loaded once,
    by :meth:`start`, off the event loop) and the flows read for hints.

    ``today``: the date relative dates resolve against (a function, for tests).
    """

    asr: AsrConfig = field(default_factory=AsrConfig)
    flows_dir: Path | None = FLOWS_DIR
    #: A turn not understood is transcribed again with the flow's vocabulary as Whisper's
    #: initial prompt (``hints.recognition_prompt``) and decided on that if it is
    #: understood (one more transcription, only on turns that would get "Sorry, I didn't
    #: catch that").
    vocabulary_retry: bool = True
    today: Callable[[], dt.date] = dt.date.today
    transcriber: WhisperTranscriber | None = None
    hints: FlowHints = field(default_factory=FlowHints)

    async def start(self) -> None:
        """Load and warm up the speech model and read the flows (idempotent)."""
        if self.transcriber is None:
            self.transcriber = await asyncio.to_thread(shared_transcriber, self.asr)
        if not self.hints.flows:
            self.hints = await asyncio.to_thread(FlowHints.load, self.flows_dir)


class UnderstandingResponder:
    """Whisper transcription + deterministic understanding (see module doc)."""

    #: Transcriptions are pure functions of the audio: a pause's result may be reused.
    speculative = True

    def __init__(self, resources: AgentResources) -> None:
        self.resources = resources
        self._understanding: Understanding | None = None
        self._key: str | None = None
        self.flow: FlowMatch | None = None
        #: Transcriptions by transcript text (the last CONFIDENCE_MEMORY), with the audio
        #: and the session prompt they were transcribed from.
        self._heard: dict[str, tuple[Transcript, bytes, str | None]] = {}

    async def transcribe(self, audio: bytes, turn_index: int, prompt: str | None = None) -> str:
        """The caller's words in ``audio`` (8 kHz μ-law), via the shared Whisper model."""
        transcriber = self.resources.transcriber
        if transcriber is None:
            await self.resources.start()
            transcriber = self.resources.transcriber
            assert transcriber is not None
        result = await transcriber.transcribe(audio, prompt)
        if result.text:
            # Remembered for the decision on this transcript (bounded: the last few turns).
            self._heard[result.text] = (result, audio, prompt)
            while len(self._heard) > CONFIDENCE_MEMORY:
                self._heard.pop(next(iter(self._heard)))
        log.info(
            "transcribed %.0f ms of audio in %.0f ms: %r",
            result.audio_ms,
            result.elapsed_ms,
            result.text,
            extra={
                "asr": {
                    "audio_ms": result.audio_ms,
                    "elapsed_ms": result.elapsed_ms,
                    "confidence": round(result.confidence, 3),
                }
            },
        )
        return result.text

    def preview(self, transcript: str) -> str | None:
        """The line the reply to ``transcript`` would start with (no state change), so the
        engine can synthesise it while the turn is still being committed."""
        if self._understanding is None or not transcript:
            return None
        turn = self._heard.get(transcript)
        # An audio turn not remembered: its numbers are never trusted (confidence 0).
        how = heard_of(turn[0]) if turn is not None else Heard(0.0)
        return self._understanding.preview(transcript, heard=how).say

    def understanding(self, request: ReplyRequest) -> Understanding:
        """The dialogue for the session's current tools + instructions (rebuilt, keeping
        what was last said, when the session changes them)."""
        key = json.dumps([request.session_instructions, request.tools], sort_keys=True)
        if self._understanding is None or key != self._key:
            match = self.resources.hints.match(request.session_instructions, request.tool_names)
            if match is not None:
                log.info("session matches flow %r by %s", match.flow.name, match.reason)
            flow = match.flow if match is not None else None
            ctx: Context = context_from_instructions(
                request.session_instructions,
                self.resources.today(),
                targets=tuple(flow.transfer_targets) if flow else (),
                greeting=flow.greeting if flow else None,
            )
            previous = self._understanding
            self._understanding = Understanding(tool_specs(request.tools, flow), ctx)
            if previous is not None:
                self._understanding.last_said = previous.last_said
            self._key, self.flow = key, match
        return self._understanding

    async def _heard_better(
        self,
        u: Understanding,
        request: ReplyRequest,
        transcript: Transcript,
        audio: bytes,
        prompt: str | None,
    ) -> Transcript:
        """``transcript``, or, when ``u`` would not understand it, the same audio
        transcribed again with the flow's vocabulary as the initial prompt if that one is
        understood (:attr:`AgentResources.vocabulary_retry`)."""
        transcriber = self.resources.transcriber
        flow = self.flow.flow if self.flow is not None else None
        if (
            not self.resources.vocabulary_retry
            or transcriber is None
            or flow is None
            or understood(u, transcript)
        ):
            return transcript
        biased = recognition_prompt(flow, prompt, request.tool_names)
        try:
            again = await transcriber.transcribe(audio, biased)
        except AsrBusyError:
            return transcript
        if again.text and again.text != transcript.text and understood(u, again):
            log.info(
                "decided on %r, heard again with the flow's vocabulary, instead of %r",
                again.text,
                transcript.text,
            )
            return unsure(again)
        return transcript

    async def respond(self, request: ReplyRequest) -> Reply:
        """Decide the reply to ``request.input`` (CPU, microseconds to milliseconds; a
        caller turn not understood waits for one more transcription, ~100-200 ms)."""
        forced = SAY_EXACTLY.search(request.instructions or "")
        u = self.understanding(request)
        if forced:
            text = forced.group("text")
            u.last_said = text
            return Reply(say=text, answers_input=False)
        inp = request.input
        if inp.kind in ("audio", "text"):
            turn = self._heard.get(inp.text) if inp.kind == "audio" else None
            if turn is not None:
                heard = await self._heard_better(u, request, *turn)
                d = decide_heard(
                    u, heard, tool_choice=request.tool_choice, forced_tool=request.forced_tool
                )
            else:
                d = u.decide(
                    inp.text,
                    tool_choice=request.tool_choice,
                    forced_tool=request.forced_tool,
                    # An audio turn not remembered: nothing in it is trusted without a
                    # read-back.
                    heard=Heard(0.0) if inp.kind == "audio" else None,
                )
            call = None
            if d.action == "call" and d.tool in request.tool_names:
                call = FunctionCallReply(d.tool, dict(d.arguments))
            return Reply(say=d.say, function_call=call)
        if inp.kind == "tool_output":
            said = u.after_tool(inp.tool_name or "", inp.tool_arguments, inp.tool_output or "")
            return Reply(say=said or None)  # nothing after a hang-up: an empty response
        if inp.kind == "idle_timeout":
            u.last_said = IDLE_PROMPT
            return Reply(say=IDLE_PROMPT)
        greeting = u.context.greeting or DEFAULT_GREETING
        u.last_said = greeting
        return Reply(say=greeting)
