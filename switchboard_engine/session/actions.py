"""Actions: the work a session hands to its connection because it needs I/O.

The session never awaits. The connection layer (``switchboard_engine.server``) performs each
action and feeds the result back (:meth:`EngineSession.transcribed`, the response step
methods).
"""

from __future__ import annotations

from dataclasses import dataclass

from switchboard_engine.session.events import Event
from switchboard_engine.session.items import ActiveResponse


@dataclass(frozen=True, slots=True)
class Transcribe:
    """Action: transcribe ``audio`` (8 kHz μ-law) of caller turn ``turn_index`` and call
    :meth:`EngineSession.transcribed`; then start a response if ``respond``.

    ``speculation``: the key of a :class:`Speculate` whose audio this turn is (speech did
    not resume after that pause), so its transcription may be reused; ``prompt``: the
    session's transcription prompt."""

    item_id: str
    audio: bytes
    turn_index: int
    respond: bool
    speculation: tuple[str, int] | None = None
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Speculate:
    """Action: start transcribing the turn so far (``audio``) at a pause in speech, before
    the turn commits; ``key`` = (speech item id, pause start ms)."""

    key: tuple[str, int]
    audio: bytes
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Generate:
    """Action: produce the reply of ``response`` (responder, TTS, paced streaming)."""

    response: ActiveResponse


#: What session methods return: server events to send, and actions to perform.
Action = Event | Transcribe | Generate | Speculate
