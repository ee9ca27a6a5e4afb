"""The conversation's data: items (messages, function calls and their outputs) and
responses, in the engine's own dialect-neutral shape (rendered by
:mod:`switchboard_engine.session.rendering`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from switchboard_engine.responder import ReplyInput


@dataclass(slots=True)
class Item:
    """A conversation item. ``transcript`` is the engine's own (SCRIPTED) copy;
    ``show_transcript`` says whether the client may see it (transcription configured)."""

    id: str
    type: str  # message | function_call | function_call_output
    role: str | None = None
    status: str = "completed"
    content_type: str | None = None  # input_audio | input_text | audio | text
    text: str = ""
    show_transcript: bool = True
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    output: str = ""
    audio_ms: int = 0  # assistant: audio generated (ms); user: audio committed (ms)
    generated_ms: int = 0
    idle_timeout: bool = False
    turn_index: int | None = None
    answered: bool = False


@dataclass(slots=True)
class ActiveResponse:
    """A response in progress (or finished, once ``status`` is not in_progress)."""

    id: str
    instructions: str
    modalities: list[str]
    metadata: Any
    reply_input: ReplyInput
    input_item: Item | None
    status: str = "in_progress"
    status_details: dict[str, Any] | None = None
    output: list[Item] = field(default_factory=list)
    message: Item | None = None
    input_tokens: dict[str, int] = field(default_factory=dict)


def text_tokens(text: str) -> int:
    """Estimated tokens of ``text`` for ``usage`` (4 characters a token)."""
    return math.ceil(len(text) / 4) if text else 0
