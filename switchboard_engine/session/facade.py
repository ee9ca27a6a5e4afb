"""EngineSession: the one façade over a Realtime session's parts.

It owns the session config and routes each client event to the part that handles it:
:class:`~switchboard_engine.session.audio_buffer.InputAudioBuffer` (``input_audio_buffer.*``),
:class:`~switchboard_engine.session.conversation.Conversation` (``conversation.item.*``),
:class:`~switchboard_engine.session.responses.Responses` (``response.*``), with
:mod:`~switchboard_engine.session.config` for ``session.update`` and
:mod:`~switchboard_engine.session.rendering` for the shapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from switchboard_engine.responder import Reply, ReplyRequest
from switchboard_engine.session.actions import Action, Transcribe
from switchboard_engine.session.audio_buffer import InputAudioBuffer
from switchboard_engine.session.config import SessionConfig, updated_config
from switchboard_engine.session.conversation import Conversation
from switchboard_engine.session.events import ClientError, Dialect, Event, Wire
from switchboard_engine.session.items import ActiveResponse, Item
from switchboard_engine.session.rendering import item_object, session_object
from switchboard_engine.session.responses import Responses
from switchboard_engine.vad import SpeechScorer, make_scorer


class EngineSession:
    """The per-connection state machine (see the package docstring).

    Introspection for tests: ``events_sent`` / ``events_received`` (the first
    :data:`~switchboard_engine.session.events.RECORD_LIMIT` of each), ``items`` and
    ``truncations`` (dicts with ``item_id``, ``audio_end_ms`` and ``generated_ms``).
    """

    def __init__(
        self,
        dialect: Dialect,
        model: str,
        scorer_factory: Callable[[], SpeechScorer] = make_scorer,
    ) -> None:
        self.dialect = dialect
        self.config = SessionConfig(model=model)
        self._wire = Wire(dialect)
        self.id = self._wire.new_id("sess")
        self.conversation_id = self._wire.new_id("conv")
        self.created_at = int(time.time())
        self.closed = False
        self._conversation = Conversation(self._wire)
        self._responses = Responses(
            self._wire,
            self._conversation,
            self.conversation_id,
            config=lambda: self.config,
            on_done=self._response_done,
        )
        self._audio = InputAudioBuffer(
            self._wire, self._conversation, self._responses, scorer_factory
        )
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Action]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": lambda e: self._audio.append(e, self.config),
            "input_audio_buffer.commit": lambda e: self._audio.commit(e, self.config),
            "input_audio_buffer.clear": self._audio.clear,
            "conversation.item.create": self._conversation.create,
            "conversation.item.retrieve": self._conversation.retrieve,
            "conversation.item.truncate": self._truncate,
            "conversation.item.delete": self._conversation.delete,
            "response.create": self._responses.create,
            "response.cancel": self._responses.cancel_event,
        }

    def close(self) -> None:
        """The connection ended: release the per-session VAD and audio (the record of
        events, items and truncations stays for introspection). Idempotent."""
        self.closed = True
        self._audio.close()

    @property
    def holds_vad(self) -> bool:
        """True while the session keeps a VAD scorer (False once closed)."""
        return self._audio.holds_vad

    # --- introspection --------------------------------------------------------------------
    @property
    def events_sent(self) -> list[Event]:
        return self._wire.events_sent

    @property
    def events_received(self) -> list[Event]:
        return self._wire.events_received

    @property
    def dropped_records(self) -> int:
        return self._wire.dropped_records

    @property
    def items(self) -> list[Item]:
        return self._conversation.items

    @property
    def truncations(self) -> list[dict[str, Any]]:
        return self._conversation.truncations

    @property
    def active(self) -> ActiveResponse | None:
        """The response in progress, if any."""
        return self._responses.active

    @property
    def responses(self) -> list[str]:
        """Ids of every response so far."""
        return self._responses.ids

    @property
    def timeline_ms(self) -> int:
        """Milliseconds of input audio appended since the session started."""
        return self._audio.timeline_ms

    def session_object(self) -> dict[str, Any]:
        """The ``session`` object of session.created/updated in this dialect's shape."""
        return session_object(self.dialect, self.id, self.config, self.created_at)

    def render_item(self, item: Item) -> dict[str, Any]:
        """A conversation item in this dialect's shape."""
        return item_object(self.dialect, item)

    def error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> Event:
        """An ``error`` server event (the socket stays open)."""
        return self._wire.error(code, message, param, client_event_id, type_)

    # --- entry points -------------------------------------------------------------------
    def start(self) -> list[Action]:
        """Events sent on connect: ``session.created``."""
        return [self._wire.event("session.created", session=self.session_object())]

    def handle_raw(self, raw: str | bytes) -> list[Action]:
        """Parse one WebSocket message and handle it; malformed input → ``error``."""
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return [self.error("invalid_json", f"Invalid JSON in client event: {exc}")]
        if not isinstance(event, dict):
            return [self.error("invalid_json", "A client event must be a JSON object.")]
        return self.handle(event)

    def handle(self, event: dict[str, Any]) -> list[Action]:
        """Handle one client event dict; refused events become ``error`` events."""
        self._wire.received(event)
        client_event_id = event.get("event_id")
        if not isinstance(client_event_id, str):
            client_event_id = None
        type_ = event.get("type")
        try:
            if not isinstance(type_, str):
                raise ClientError(
                    "missing_required_parameter", "Missing required parameter: 'type'.", "type"
                )
            handler = self._handlers.get(type_)
            if handler is None:
                raise ClientError(
                    "invalid_value",
                    f"Invalid value: '{type_}'. Supported values are: "
                    + ", ".join(f"'{t}'" for t in self._handlers),
                    "type",
                )
            return handler(event)
        except ClientError as exc:
            return [self.error(exc.code, exc.message, exc.param, client_event_id)]

    def _session_update(self, event: dict[str, Any]) -> list[Action]:
        self.config = updated_config(self.config, self.dialect, event, self._responses.spoke)
        self._audio.configure(self.config.turn_detection)
        return [self._wire.event("session.updated", session=self.session_object())]

    def _truncate(self, event: dict[str, Any]) -> list[Action]:
        def stop_generating(item: Item) -> list[Action]:
            # The client cut an item still being generated: stop generating it.
            resp = self._responses.active
            if resp is not None and resp.message is item:
                return self._responses.cancel(resp, "client_cancelled")
            return []

        return self._conversation.truncate(event, stop_generating)

    def _response_done(self, resp: ActiveResponse) -> None:
        self._audio.response_ended(
            sum(i.audio_ms for i in resp.output if i.content_type == "audio")
        )

    # --- results of actions -------------------------------------------------------------
    def transcribed(self, action: Transcribe, transcript: str) -> list[Action]:
        """Result of a :class:`Transcribe` action: transcription events, maybe a response."""
        visible = self.config.transcription is not None
        actions: list[Action] = []
        actions += self._conversation.transcribed(action.item_id, transcript, visible)
        if action.respond and self._responses.active is None:
            actions += self._responses.start({})
        return actions

    def transcription_failed(self, action: Transcribe, message: str) -> list[Action]:
        """A :class:`Transcribe` action failed: ``…input_audio_transcription.failed``; the
        turn is then answered as if nothing intelligible was said."""
        visible = self.config.transcription is not None
        actions: list[Action] = []
        actions += self._conversation.transcription_failed(action.item_id, message, visible)
        if action.respond and self._responses.active is None:
            actions += self._responses.start({})
        return actions

    # --- response steps (driven by the connection while it produces the reply) ----------
    def reply_request(self, resp: ActiveResponse) -> ReplyRequest:
        """What the responder needs to produce ``resp``'s reply."""
        return self._responses.reply_request(resp)

    def is_active(self, resp: ActiveResponse) -> bool:
        """True while ``resp`` is the active response (not cancelled/finished)."""
        return self._responses.is_active(resp)

    def apply_reply(self, resp: ActiveResponse, reply: Reply) -> None:
        """Mark the input answered if the reply answered it."""
        self._responses.apply_reply(resp, reply)

    def begin_message(self, resp: ActiveResponse) -> list[Action]:
        """Open an assistant message (audio or text per the response's modalities)."""
        return self._responses.begin_message(resp)

    def message_delta(self, resp: ActiveResponse, audio: bytes, text: str) -> list[Action]:
        """One streamed step: an audio delta (8 kHz μ-law) and/or its transcript text."""
        return self._responses.message_delta(resp, audio, text)

    def end_message(self, resp: ActiveResponse, status: str = "completed") -> list[Action]:
        """Close the open assistant message."""
        return self._responses.end_message(resp, status)

    def function_call(
        self, resp: ActiveResponse, name: str, arguments: dict[str, Any]
    ) -> list[Action]:
        """A complete function call output item, arguments streamed in a few deltas."""
        return self._responses.function_call(resp, name, arguments)

    def finish(self, resp: ActiveResponse) -> list[Action]:
        """Close ``resp`` as completed: ``response.done``."""
        return self._responses.finish(resp)

    def fail(self, resp: ActiveResponse, message: str) -> list[Action]:
        """Close ``resp`` as failed (e.g. TTS broke): ``response.done`` status failed."""
        return self._responses.fail(resp, message)
