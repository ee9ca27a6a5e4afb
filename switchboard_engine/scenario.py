"""SCRIPTED scenario for the local engine: what the "caller said" and what the engine replies.

The engine does not understand audio yet (issue 3 adds ASR and real understanding).
Instead each committed caller turn is given the next scripted ``transcript`` and the
reply is read from the same turn. The file is YAML validated by :class:`Scenario`::

    name: demo
    greeting: "Hello! How can I help you today?"        # response.create with no new input
    turns:                                              # caller turns, in order
      - transcript: "What's the status of order 1042?"  # SCRIPTED transcript of turn 1
        say: null                                       # optional spoken reply
        function_call: {name: get_order_status, arguments: {order_id: "1042"}}
    after_tool:                                         # reply after a function_call_output,
      get_order_status: "Order {order_id} is {status}." #   formatted with the output's fields
    fallback: "Sorry, could you say that again?"        # turns beyond the list, unknown input
    idle_prompt: "Are you still there?"                 # after idle_timeout_ms (GA server VAD)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

#: The built-in demo scenario (matches flows/support.yaml tools).
DEFAULT_SCENARIO_PATH = Path(__file__).resolve().parent / "scenarios" / "demo.yaml"


class ScriptedFunctionCall(BaseModel):
    """A function call the engine makes: ``name`` and JSON ``arguments`` (an object)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptedTurn(BaseModel):
    """One caller turn: the SCRIPTED transcript the engine reports, and its reply.

    The reply is ``say`` (spoken first), then ``function_call`` (in the same response).
    A turn with neither replies with the scenario ``fallback``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    transcript: str = Field(min_length=1)
    say: str | None = None
    function_call: ScriptedFunctionCall | None = None


class Scenario(BaseModel):
    """A SCRIPTED conversation: ordered caller turns plus templates (see module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "scenario"
    description: str = ""
    greeting: str = "Hello! How can I help you today?"
    turns: list[ScriptedTurn] = Field(default_factory=list)
    after_tool: dict[str, str] = Field(default_factory=dict)
    fallback: str = "Sorry, could you say that again?"
    idle_prompt: str = "Are you still there?"
    #: Transcript reported for caller turns beyond ``turns``.
    unscripted_transcript: str = "(unscripted caller turn)"

    @classmethod
    def load(cls, path: Path | None = None) -> Scenario:
        """Read and validate a scenario YAML file (default: the built-in demo)."""
        path = path or DEFAULT_SCENARIO_PATH
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a scenario must be a YAML mapping")
        return cls.model_validate(data)
