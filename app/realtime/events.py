"""Switchboard's one internal model of Realtime server events.

Each class is named after the GA wire ``type`` it stands for (``response.output_audio.delta``
→ ``ResponseOutputAudioDelta``); beta names are mapped onto the same classes by the codec
(docs/protocols.md §1 "Events"). Only the events a phone bridge acts on get a class; every other
known event decodes to ``Ignored`` with its type, so nothing is silently misread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Error:
    """``error {error{type, code, message, param, event_id}}`` — logged; the call goes on."""

    type: str
    code: str | None
    message: str
    event_id: str | None


@dataclass(frozen=True, slots=True)
class InputAudioBufferSpeechStarted:
    """Caller speech began; ``audio_start_ms`` is on the input-audio timeline (ms)."""

    audio_start_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class InputAudioBufferSpeechStopped:
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class InputAudioBufferCommitted:
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class InputAudioBufferTimeoutTriggered:
    """GA only: the caller was silent for ``idle_timeout_ms``."""

    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ConversationItemInputAudioTranscriptionCompleted:
    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class ConversationItemTruncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseOutputItemAdded:
    """A new output item; ``item`` is the raw item (``type`` message or function_call)."""

    response_id: str
    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseOutputAudioDelta:
    """A chunk of assistant audio: ``delta`` is base64 μ-law, ``size`` its length in bytes."""

    response_id: str
    item_id: str
    delta: str
    size: int


@dataclass(frozen=True, slots=True)
class ResponseOutputAudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ResponseOutputAudioTranscriptDone:
    response_id: str
    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """``response.done``: ``status`` completed|cancelled|failed|incomplete; ``output`` items;
    ``usage`` token counts (docs/protocols.md §1 "Response object and function calls")."""

    response_id: str
    status: str
    status_reason: str | None
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A known-but-unused or unknown server event; ``type`` is its wire type."""

    type: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


RealtimeEvent = (
    SessionCreated
    | SessionUpdated
    | Error
    | InputAudioBufferSpeechStarted
    | InputAudioBufferSpeechStopped
    | InputAudioBufferCommitted
    | InputAudioBufferTimeoutTriggered
    | ConversationItemInputAudioTranscriptionCompleted
    | ConversationItemTruncated
    | ResponseCreated
    | ResponseOutputItemAdded
    | ResponseOutputAudioDelta
    | ResponseOutputAudioDone
    | ResponseOutputAudioTranscriptDone
    | ResponseDone
    | Ignored
)
