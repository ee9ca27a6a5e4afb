"""The conversation: ordered items, the ``conversation.item.*`` client events, caller
turn transcripts, and what the next response answers.

Times are ms of audio (8 kHz μ-law). Protocols.md §1 "Events" and "Barge-in over a
WebSocket" (``conversation.item.truncate``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from switchboard_engine.responder import ReplyInput
from switchboard_engine.session.actions import Action
from switchboard_engine.session.events import (
    ClientError,
    Dialect,
    Event,
    Wire,
    require_object,
    require_str,
)
from switchboard_engine.session.items import Item, text_tokens
from switchboard_engine.session.rendering import item_object


class Conversation:
    """The items of one session, in order (``items``), and every truncation the client
    made (``truncations``: dicts with ``item_id``, ``audio_end_ms``, ``generated_ms``)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.items: list[Item] = []
        self._by_id: dict[str, Item] = {}
        self.truncations: list[dict[str, Any]] = []

    @property
    def dialect(self) -> Dialect:
        return self.wire.dialect

    def get(self, item_id: str) -> Item | None:
        """The item ``item_id``, if it exists."""
        return self._by_id.get(item_id)

    def render(self, item: Item) -> dict[str, Any]:
        """``item`` in this session's dialect."""
        return item_object(self.dialect, item)

    def insert(self, item: Item, after: str | None = None) -> str | None:
        """Add ``item`` at the end (or after ``after``); returns the previous item's id."""
        if after is None or after == (self.items[-1].id if self.items else None):
            previous = self.items[-1].id if self.items else None
            self.items.append(item)
        elif after == "root":
            previous = None
            self.items.insert(0, item)
        else:
            idx = next(i for i, it in enumerate(self.items) if it.id == after)
            previous = after
            self.items.insert(idx + 1, item)
        self._by_id[item.id] = item
        return previous

    def added(self, item: Item, previous: str | None, done: bool = True) -> list[Event]:
        """``conversation.item.added`` (+ ``.done`` when ``done``) in GA,
        ``conversation.item.created`` in beta."""
        rendered = self.render(item)
        ev = self.wire.event
        if self.dialect is Dialect.beta:
            return [ev("conversation.item.created", previous_item_id=previous, item=rendered)]
        events = [ev("conversation.item.added", previous_item_id=previous, item=rendered)]
        if done:
            events.append(ev("conversation.item.done", previous_item_id=previous, item=rendered))
        return events

    def call(self, call_id: str) -> Item | None:
        """The latest ``function_call`` item with ``call_id``."""
        for item in reversed(self.items):
            if item.type == "function_call" and item.call_id == call_id:
                return item
        return None

    # --- client events ------------------------------------------------------------------
    def create(self, event: dict[str, Any]) -> list[Action]:
        """``conversation.item.create``: a message, function call or function call output."""
        raw = require_object(event, "item", "item")
        after = event.get("previous_item_id")
        if after is not None and after != "root" and after not in self._by_id:
            raise ClientError(
                "invalid_value",
                f"Previous item with id '{after}' does not exist.",
                "previous_item_id",
            )
        item_id = raw.get("id") or self.wire.new_id("item")
        if not isinstance(item_id, str) or item_id in self._by_id:
            raise ClientError("invalid_value", f"Item id {item_id!r} already exists.", "item.id")
        type_ = raw.get("type")
        item: Item
        if type_ == "message":
            item = self._message_from_client(item_id, raw)
        elif type_ == "function_call_output":
            call_id = require_str(raw.get("call_id"), "item.call_id")
            call = self.call(call_id)
            if call is None:
                raise ClientError(
                    "invalid_value",
                    f"No function call found with call_id '{call_id}'.",
                    "item.call_id",
                )
            output = require_str(raw.get("output"), "item.output")
            item = Item(
                id=item_id,
                type="function_call_output",
                call_id=call_id,
                output=output,
                name=call.name,
            )
        elif type_ == "function_call":
            item = Item(
                id=item_id,
                type="function_call",
                call_id=require_str(raw.get("call_id"), "item.call_id"),
                name=require_str(raw.get("name"), "item.name"),
                arguments=require_str(raw.get("arguments"), "item.arguments"),
            )
        else:
            raise ClientError(
                "invalid_value",
                f"Invalid value: {type_!r}. Supported values are: 'message', "
                "'function_call', 'function_call_output'.",
                "item.type",
            )
        previous = self.insert(item, after)
        return list(self.added(item, previous))

    def _message_from_client(self, item_id: str, raw: dict[str, Any]) -> Item:
        role = raw.get("role")
        if role not in ("user", "system", "assistant"):
            raise ClientError(
                "invalid_value", "item.role must be 'user', 'system' or 'assistant'.", "item.role"
            )
        content = raw.get("content")
        if not isinstance(content, list) or not content or not isinstance(content[0], dict):
            raise ClientError(
                "missing_required_parameter",
                "Missing required parameter: 'item.content'.",
                "item.content",
            )
        part = content[0]
        ptype = part.get("type")
        if role == "assistant":
            if ptype not in ("output_text", "text", "output_audio", "audio"):
                raise ClientError(
                    "invalid_value", f"Invalid assistant content type {ptype!r}.", "item.content"
                )
            audio = ptype in ("output_audio", "audio")
            text = part.get("transcript" if audio else "text") or ""
            return Item(
                id=item_id,
                type="message",
                role=role,
                content_type="audio" if audio else "text",
                text=require_str(text, "item.content"),
            )
        if ptype == "input_text":
            text = require_str(part.get("text"), "item.content[0].text")
            return Item(id=item_id, type="message", role=role, content_type="input_text", text=text)
        if ptype == "input_audio" and role == "user":
            return Item(
                id=item_id,
                type="message",
                role=role,
                content_type="input_audio",
                text=part.get("transcript") or "",
            )
        raise ClientError(
            "invalid_value",
            f"Unsupported content type {ptype!r} for role {role!r}.",
            "item.content",
        )

    def delete(self, event: dict[str, Any]) -> list[Action]:
        """``conversation.item.delete``."""
        item_id = require_str(event.get("item_id"), "item_id")
        item = self._by_id.pop(item_id, None)
        if item is None:
            raise ClientError(
                "invalid_value", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        self.items.remove(item)
        return [self.wire.event("conversation.item.deleted", item_id=item_id)]

    def retrieve(self, event: dict[str, Any]) -> list[Action]:
        """``conversation.item.retrieve``."""
        item_id = require_str(event.get("item_id"), "item_id")
        item = self._by_id.get(item_id)
        if item is None:
            raise ClientError(
                "invalid_value", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        return [self.wire.event("conversation.item.retrieved", item=self.render(item))]

    def truncate(
        self, event: dict[str, Any], stop_generating: Callable[[Item], list[Action]]
    ) -> list[Action]:
        """``conversation.item.truncate``: cut an assistant audio item at ``audio_end_ms``
        (its transcript at the word boundary nearest that share). ``stop_generating`` is
        called first with the item: it cancels the response still generating it."""
        item_id = require_str(event.get("item_id"), "item_id")
        content_index = event.get("content_index")
        audio_end_ms = event.get("audio_end_ms")
        if not isinstance(content_index, int) or isinstance(content_index, bool):
            raise ClientError(
                "missing_required_parameter",
                "Missing required parameter: 'content_index'.",
                "content_index",
            )
        if not isinstance(audio_end_ms, int) or isinstance(audio_end_ms, bool) or audio_end_ms < 0:
            raise ClientError(
                "invalid_value", "'audio_end_ms' must be an integer >= 0.", "audio_end_ms"
            )
        item = self._by_id.get(item_id)
        if item is None:
            raise ClientError(
                "item_truncate_invalid_item_id",
                f"Item with item_id '{item_id}' not found.",
                "item_id",
            )
        if item.role != "assistant" or item.content_type != "audio" or content_index != 0:
            raise ClientError(
                "invalid_value",
                "Only the audio content (content_index 0) of an assistant message can be "
                "truncated.",
                "item_id" if item.role != "assistant" else "content_index",
            )
        if audio_end_ms > item.audio_ms:
            raise ClientError(
                "invalid_value",
                f"Audio content of {item.audio_ms}ms is already shorter than {audio_end_ms}ms.",
                "audio_end_ms",
            )
        actions = stop_generating(item)
        generated = item.generated_ms
        if item.audio_ms > 0:
            item.text = _cut_words(item.text, audio_end_ms / item.audio_ms)
        item.audio_ms = audio_end_ms
        self.truncations.append(
            {"item_id": item_id, "audio_end_ms": audio_end_ms, "generated_ms": generated}
        )
        actions.append(
            self.wire.event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=audio_end_ms,
            )
        )
        return actions

    # --- caller turn transcripts ----------------------------------------------------------
    def transcribed(self, item_id: str, transcript: str, visible: bool) -> list[Event]:
        """Set a caller turn's transcript; when ``visible`` (transcription configured), the
        ``…input_audio_transcription.delta`` events (one per word) and ``.completed``."""
        item = self._by_id.get(item_id)
        events: list[Event] = []
        if item is None:
            return events
        item.text = transcript
        if not visible:
            return events
        ev = self.wire.event
        words = transcript.split(" ")
        for i, word in enumerate(words):
            delta = word if i == len(words) - 1 else word + " "
            events.append(
                ev(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=item.id,
                    content_index=0,
                    delta=delta,
                )
            )
        audio_tokens = max(1, item.audio_ms // 100)
        transcript_tokens = text_tokens(transcript)
        events.append(
            ev(
                "conversation.item.input_audio_transcription.completed",
                item_id=item.id,
                content_index=0,
                transcript=transcript,
                usage={
                    "type": "tokens",
                    "input_tokens": audio_tokens,
                    "output_tokens": transcript_tokens,
                    "total_tokens": audio_tokens + transcript_tokens,
                    "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
                },
            )
        )
        return events

    def transcription_failed(self, item_id: str, message: str, visible: bool) -> list[Event]:
        """``…input_audio_transcription.failed`` for a caller turn, when ``visible``."""
        item = self._by_id.get(item_id)
        if item is None or not visible:
            return []
        return [
            self.wire.event(
                "conversation.item.input_audio_transcription.failed",
                item_id=item.id,
                content_index=0,
                error={
                    "type": "transcription_error",
                    "code": "engine_asr_error",
                    "message": message,
                    "param": None,
                },
            )
        ]

    # --- what a response answers ----------------------------------------------------------
    def next_input(self) -> tuple[ReplyInput, Item | None]:
        """The latest unanswered input after the last system message (caller turn, text,
        tool output or idle timeout) and its item."""
        for item in reversed(self.items):
            if item.role == "assistant" or item.type == "function_call":
                continue
            if item.role == "system" or item.answered:
                break
            if item.type == "function_call_output":
                call = self.call(item.call_id or "")
                args = call.arguments if call is not None else None
                return ReplyInput(
                    "tool_output", tool_name=item.name, tool_output=item.output, tool_arguments=args
                ), item
            if item.idle_timeout:
                return ReplyInput("idle_timeout"), item
            if item.content_type == "input_audio":
                return ReplyInput("audio", text=item.text, turn_index=item.turn_index), item
            return ReplyInput("text", text=item.text), item
        return ReplyInput("none"), None

    def history(self) -> tuple[str, ...]:
        """The text of every message so far, in order."""
        return tuple(i.text for i in self.items if i.type == "message" and i.text)

    def context_tokens(self, instructions: str, tools: list[dict[str, Any]]) -> dict[str, int]:
        """Estimated input tokens of a response: ``{"text": …, "audio": …}``."""
        text = text_tokens(instructions)
        audio = 0
        for item in self.items:
            text += text_tokens(item.text) + text_tokens(item.arguments)
            text += text_tokens(item.output) + 4
            if item.content_type == "input_audio":
                audio += item.audio_ms // 100
            elif item.content_type == "audio":
                audio += item.audio_ms // 50
        for tool in tools:
            text += text_tokens(orjson.dumps(tool).decode())
        return {"text": text, "audio": audio}


def _cut_words(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``, cut back to a word boundary."""
    if fraction >= 1:
        return text
    cut = int(len(text) * max(0.0, fraction))
    if cut < len(text) and cut > 0 and not text[cut].isspace():
        space = text.rfind(" ", 0, cut)
        cut = space if space > 0 else cut
    return text[:cut].rstrip()
