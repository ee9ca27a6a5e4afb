"""Pure codec for the Realtime API (docs/protocols.md §1), GA and beta.

``decode(text)`` maps one server event onto ``app.realtime.events`` through one table,
``DECODERS``, keyed by GA type; ``BETA_TO_GA`` renames the beta types first. The
``ClientEvents`` class builds client events in the connection's dialect. No sockets here.
"""

from __future__ import annotations

import binascii
import itertools
from collections.abc import Callable
from typing import Any

import orjson

from app.errors import RealtimeCodecError
from app.realtime import events as ev

#: Beta wire types → the GA type they correspond to (docs/protocols.md §1 "Events").
BETA_TO_GA: dict[str, str] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
}


def _s(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise RealtimeCodecError(f"{d.get('type')}: missing string {key!r}")
    return v


def _i(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise RealtimeCodecError(f"{d.get('type')}: missing integer {key!r}")
    return v


def _error(d: dict[str, Any]) -> ev.Error:
    err = d.get("error") or {}
    if not isinstance(err, dict):
        err = {"message": str(err)}
    code = err.get("code")
    event_id = err.get("event_id")
    return ev.Error(
        type=str(err.get("type", "error")),
        code=str(code) if code is not None else None,
        message=str(err.get("message", "")),
        event_id=str(event_id) if event_id is not None else None,
    )


def _audio_delta(d: dict[str, Any]) -> ev.ResponseOutputAudioDelta:
    delta = _s(d, "delta")
    try:
        size = len(binascii.a2b_base64(delta, strict_mode=True))
    except (binascii.Error, ValueError) as exc:
        raise RealtimeCodecError(f"audio delta is not valid base64: {exc}") from None
    return ev.ResponseOutputAudioDelta(
        response_id=_s(d, "response_id"), item_id=_s(d, "item_id"), delta=delta, size=size
    )


def _response_done(d: dict[str, Any]) -> ev.ResponseDone:
    resp = d.get("response")
    if not isinstance(resp, dict):
        raise RealtimeCodecError("response.done: missing object 'response'")
    details = resp.get("status_details") or {}
    output = resp.get("output") or []
    usage = resp.get("usage")
    return ev.ResponseDone(
        response_id=str(resp.get("id", "")),
        status=str(resp.get("status", "")),
        status_reason=details.get("reason") if isinstance(details, dict) else None,
        output=[o for o in output if isinstance(o, dict)],
        usage=usage if isinstance(usage, dict) else None,
    )


def _item(d: dict[str, Any]) -> dict[str, Any]:
    item = d.get("item")
    if not isinstance(item, dict):
        raise RealtimeCodecError(f"{d.get('type')}: missing object 'item'")
    return item


#: The one decode table, keyed by GA type.
DECODERS: dict[str, Callable[[dict[str, Any]], ev.RealtimeEvent]] = {
    "session.created": lambda d: ev.SessionCreated(session=d.get("session") or {}),
    "session.updated": lambda d: ev.SessionUpdated(session=d.get("session") or {}),
    "error": _error,
    "input_audio_buffer.speech_started": lambda d: ev.InputAudioBufferSpeechStarted(
        audio_start_ms=_i(d, "audio_start_ms"), item_id=_s(d, "item_id")
    ),
    "input_audio_buffer.speech_stopped": lambda d: ev.InputAudioBufferSpeechStopped(
        audio_end_ms=_i(d, "audio_end_ms"), item_id=_s(d, "item_id")
    ),
    "input_audio_buffer.committed": lambda d: ev.InputAudioBufferCommitted(
        item_id=_s(d, "item_id"), previous_item_id=d.get("previous_item_id")
    ),
    "input_audio_buffer.timeout_triggered": lambda d: ev.InputAudioBufferTimeoutTriggered(
        item_id=_s(d, "item_id"),
        audio_start_ms=_i(d, "audio_start_ms"),
        audio_end_ms=_i(d, "audio_end_ms"),
    ),
    "conversation.item.input_audio_transcription.completed": lambda d: (
        ev.ConversationItemInputAudioTranscriptionCompleted(
            item_id=_s(d, "item_id"), transcript=str(d.get("transcript") or "")
        )
    ),
    "conversation.item.truncated": lambda d: ev.ConversationItemTruncated(
        item_id=_s(d, "item_id"), audio_end_ms=_i(d, "audio_end_ms")
    ),
    "response.created": lambda d: ev.ResponseCreated(
        response_id=str((d.get("response") or {}).get("id", ""))
    ),
    "response.output_item.added": lambda d: ev.ResponseOutputItemAdded(
        response_id=str(d.get("response_id", "")), item=_item(d)
    ),
    "response.output_audio.delta": _audio_delta,
    "response.output_audio.done": lambda d: ev.ResponseOutputAudioDone(
        response_id=_s(d, "response_id"), item_id=_s(d, "item_id")
    ),
    "response.output_audio_transcript.done": lambda d: ev.ResponseOutputAudioTranscriptDone(
        response_id=_s(d, "response_id"),
        item_id=_s(d, "item_id"),
        transcript=str(d.get("transcript") or ""),
    ),
    "response.done": _response_done,
}


def decode(message: str | bytes) -> ev.RealtimeEvent:
    """Decode one Realtime server event (GA or beta names).

    Returns a typed event, or ``Ignored`` for types the bridge does not act on. Raises
    ``RealtimeCodecError`` for invalid JSON, a non-object, a missing ``type`` or a
    malformed body of an event the bridge acts on.
    """
    try:
        d = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise RealtimeCodecError(f"invalid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise RealtimeCodecError("event is not a JSON object")
    t = d.get("type")
    if not isinstance(t, str):
        raise RealtimeCodecError("event has no string 'type'")
    t = BETA_TO_GA.get(t, t)
    decoder = DECODERS.get(t)
    if decoder is None:
        return ev.Ignored(type=t, raw=d)
    try:
        return decoder(d)
    except RealtimeCodecError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise RealtimeCodecError(f"{t}: malformed event: {exc}") from None


class ClientEvents:
    """Builds client events (JSON text) for one connection in its dialect.

    Every event but ``input_audio_buffer.append`` carries an ``event_id`` (``sb_<n>``) so
    an ``error`` can be traced to the event that caused it.
    """

    def __init__(self, beta: bool) -> None:
        self.beta = beta
        self._ids = itertools.count(1)
        #: ``event_id`` of the last event built (to match an ``error`` to it).
        self.last_event_id: str | None = None

    def _dump(self, event: dict[str, Any]) -> str:
        self.last_event_id = event["event_id"] = f"sb_{next(self._ids)}"
        return orjson.dumps(event).decode()

    @staticmethod
    def input_audio_append(payload_b64: str) -> str:
        """``input_audio_buffer.append {audio}``; ``payload_b64`` is base64 G.711 μ-law.

        Built by hand (hot path, 50 per second per call); the payload was checked as strict
        base64 by the carrier codec, so it needs no escaping.
        """
        return '{"type":"input_audio_buffer.append","audio":"' + payload_b64 + '"}'

    def session_update(self, session: dict[str, Any]) -> str:
        """``session.update {session}``; build ``session`` with ``app.realtime.dialect``."""
        return self._dump({"type": "session.update", "session": session})

    def truncate(self, item_id: str, audio_end_ms: int, content_index: int = 0) -> str:
        """``conversation.item.truncate`` — cut an assistant item to what was heard (ms)."""
        return self._dump(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": audio_end_ms,
            }
        )

    def user_text(self, text: str) -> str:
        """``conversation.item.create`` with a user ``message`` of ``input_text``."""
        return self._dump(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )

    def assistant_text(self, text: str) -> str:
        """``conversation.item.create`` with an assistant ``message`` of text: a turn the
        caller heard, replayed into a new session (GA ``output_text``, beta ``text``)."""
        part = "text" if self.beta else "output_text"
        return self.item_create(
            {"type": "message", "role": "assistant", "content": [{"type": part, "text": text}]}
        )

    def item_create(self, item: dict[str, Any]) -> str:
        """``conversation.item.create {item}`` for an item built by the caller."""
        return self._dump({"type": "conversation.item.create", "item": item})

    def item_delete(self, item_id: str) -> str:
        """``conversation.item.delete`` — drop an assistant item the caller never heard."""
        return self._dump({"type": "conversation.item.delete", "item_id": item_id})

    def function_output(self, call_id: str, output: str) -> str:
        """``conversation.item.create`` with a ``function_call_output`` (``output``: JSON text)."""
        return self._dump(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )

    def response_create(self, instructions: str | None = None) -> str:
        """``response.create``, optionally with per-response ``instructions``."""
        event: dict[str, Any] = {"type": "response.create"}
        if instructions is not None:
            event["response"] = {"instructions": instructions}
        return self._dump(event)

    def response_cancel(self) -> str:
        return self._dump({"type": "response.cancel"})


def say_exactly(text: str) -> str:
    """Per-response instructions that make the model speak ``text`` verbatim.

    Used for greetings, filler lines and operator ``/say``; the local engine recognises the
    same phrase.
    """
    return f'Say exactly this and nothing else: "{text}"'
