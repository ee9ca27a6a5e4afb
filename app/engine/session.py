"""Sans-I/O Realtime session: client event dicts in, server event dicts (and actions) out.

One :class:`EngineSession` per WebSocket connection. It owns the session config, the
conversation, the input audio buffer + server VAD and the active response. It never
awaits: work that needs I/O is returned as an action (:class:`Transcribe`,
:class:`Generate`) which the connection layer (``app.engine.server``) performs, feeding
results back through :meth:`EngineSession.transcribed` and the response step methods.

Wire names and shapes follow protocols.md §1 ("Events", "Session", "Response object
and function calls", "Barge-in over a WebSocket"); the GA names are used internally and
renamed for the beta dialect on the way out. Times are milliseconds on the input audio
timeline (8 kHz μ-law, 8 bytes per ms), never wall-clock.

The reply content comes from a responder (``app.engine.responder``): Whisper
transcription + understanding by default, or a SCRIPTED scenario.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from app.audio import BYTES_PER_MS
from app.engine.responder import Reply, ReplyInput, ReplyRequest
from app.engine.vad import (
    SpeechEnd,
    SpeechPause,
    SpeechScorer,
    SpeechStart,
    VadSegmenter,
    make_scorer,
)

Event = dict[str, Any]

#: Output audio is streamed in deltas of this many ms (100 ms = 800 bytes of μ-law).
OUTPUT_CHUNK_MS = 100
#: A manual commit needs at least this much buffered audio (ms), like the real service.
MIN_COMMIT_MS = 100
#: Input audio kept before speech when idle (ms beyond the prefix padding).
IDLE_KEEP_MS = 1000
#: Longest caller turn kept for transcription (ms); older audio is dropped.
MAX_TURN_AUDIO_MS = 15 * 60 * 1000
#: Events kept in ``events_sent`` / ``events_received`` for introspection (then counted).
RECORD_LIMIT = 20_000
#: Session lifetime reported in ``expires_at`` (s; protocols.md §1: 60 min GA, 30 min beta).
SESSION_TTL_S = {"ga": 3600, "beta": 1800}

_BETA_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}


class Dialect(StrEnum):
    """Wire dialect of a connection (protocols.md §1 "Connecting")."""

    ga = "ga"
    beta = "beta"


class ClientError(Exception):
    """A client event the engine refuses; becomes an ``error`` server event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(slots=True)
class TurnDetection:
    """``server_vad`` / ``semantic_vad`` settings (ms on the audio timeline)."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None
    eagerness: str | None = None


@dataclass(slots=True)
class SessionConfig:
    """Dialect-neutral session settings. Only μ-law (``pcmu``) audio is supported."""

    model: str
    instructions: str = ""
    voice: str = "alloy"
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    transcription: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    max_output_tokens: int | str = "inf"
    temperature: float = 0.8
    speed: float = 1.0


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


Action = Event | Transcribe | Generate | Speculate


def _tokens_for_text(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


class EngineSession:
    """The per-connection state machine (see module docstring).

    Introspection for tests: ``events_sent`` / ``events_received`` (the first
    :data:`RECORD_LIMIT` of each) and ``truncations`` (dicts with ``item_id``,
    ``audio_end_ms`` and ``generated_ms``).
    """

    def __init__(
        self,
        dialect: Dialect,
        model: str,
        scorer_factory: Callable[[], SpeechScorer] = make_scorer,
    ) -> None:
        self.dialect = dialect
        self.config = SessionConfig(model=model)
        self._prefix = secrets.token_hex(4)
        self._counter = 0
        self.id = self._new_id("sess")
        self.conversation_id = self._new_id("conv")
        self.created_at = int(time.time())
        self.events_sent: list[Event] = []
        self.events_received: list[Event] = []
        self.truncations: list[dict[str, Any]] = []
        self.dropped_records = 0
        self.items: list[Item] = []
        self._by_id: dict[str, Item] = {}
        self.active: ActiveResponse | None = None
        self.responses: list[str] = []
        self._scorer_factory = scorer_factory
        self._scorer: SpeechScorer | None = None
        self._segmenter: VadSegmenter | None = None
        self._buffer = bytearray()
        self.timeline_bytes = 0
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0
        self._audio_turns = 0
        self._idle_ref_ms = 0
        self._spoke = False
        self._pause: tuple[str, int] | None = None

    # --- ids and event plumbing ---------------------------------------------------------
    def _new_id(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}_{self._prefix}{self._counter:08d}"

    @property
    def timeline_ms(self) -> int:
        """Milliseconds of input audio appended since the session started."""
        return self.timeline_bytes // BYTES_PER_MS

    def _record(self, log: list[Event], event: Event) -> None:
        if len(log) < RECORD_LIMIT:
            log.append(event)
        else:
            self.dropped_records += 1

    def _ev(self, type_: str, **fields: Any) -> Event:
        if self.dialect is Dialect.beta:
            type_ = _BETA_NAMES.get(type_, type_)
        event: Event = {"type": type_, "event_id": self._new_id("event"), **fields}
        self._record(self.events_sent, event)
        return event

    def error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> Event:
        """An ``error`` server event (the socket stays open)."""
        err = {
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        }
        return self._ev("error", error=err)

    # --- rendering ----------------------------------------------------------------------
    def session_object(self) -> dict[str, Any]:
        """The ``session`` object of session.created/updated in this dialect's shape."""
        c = self.config
        td = self._render_turn_detection()
        ttl = SESSION_TTL_S[self.dialect.value]
        if self.dialect is Dialect.beta:
            return {
                "id": self.id,
                "object": "realtime.session",
                "model": c.model,
                "expires_at": self.created_at + ttl,
                "modalities": ["text", "audio"] if "audio" in c.output_modalities else ["text"],
                "instructions": c.instructions,
                "voice": c.voice,
                "input_audio_format": "g711_ulaw",
                "output_audio_format": "g711_ulaw",
                "input_audio_transcription": c.transcription,
                "input_audio_noise_reduction": None,
                "turn_detection": td,
                "tools": c.tools,
                "tool_choice": c.tool_choice,
                "temperature": c.temperature,
                "max_response_output_tokens": c.max_output_tokens,
                "speed": c.speed,
                "tracing": None,
            }
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": c.model,
            "expires_at": self.created_at + ttl,
            "output_modalities": list(c.output_modalities),
            "instructions": c.instructions,
            "tools": c.tools,
            "tool_choice": c.tool_choice,
            "max_output_tokens": c.max_output_tokens,
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": c.transcription,
                    "noise_reduction": None,
                    "turn_detection": td,
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": c.voice, "speed": c.speed},
            },
        }

    def _render_turn_detection(self) -> dict[str, Any] | None:
        td = self.config.turn_detection
        if td is None:
            return None
        if td.type == "semantic_vad":
            return {
                "type": "semantic_vad",
                "eagerness": td.eagerness or "auto",
                "create_response": td.create_response,
                "interrupt_response": td.interrupt_response,
            }
        out: dict[str, Any] = {
            "type": "server_vad",
            "threshold": td.threshold,
            "prefix_padding_ms": td.prefix_padding_ms,
            "silence_duration_ms": td.silence_duration_ms,
            "create_response": td.create_response,
            "interrupt_response": td.interrupt_response,
        }
        if self.dialect is Dialect.ga:
            out["idle_timeout_ms"] = td.idle_timeout_ms
        return out

    def render_item(self, item: Item) -> dict[str, Any]:
        """A conversation item in this dialect's shape."""
        out: dict[str, Any] = {"id": item.id, "object": "realtime.item", "type": item.type}
        if item.type == "function_call":
            out.update(status=item.status, call_id=item.call_id, name=item.name)
            out["arguments"] = item.arguments
            return out
        if item.type == "function_call_output":
            out.update(call_id=item.call_id, output=item.output)
            if self.dialect is Dialect.ga:
                out["status"] = item.status
            return out
        out.update(status=item.status, role=item.role)
        ga = self.dialect is Dialect.ga
        ct = item.content_type
        part: dict[str, Any]
        if ct == "input_audio":
            transcript = item.text if item.show_transcript and item.text else None
            part = {"type": "input_audio", "transcript": transcript}
        elif ct == "input_text":
            part = {"type": "input_text", "text": item.text}
        elif ct == "audio":
            part = {"type": "output_audio" if ga else "audio", "transcript": item.text}
        else:
            part = {"type": "output_text" if ga else "text", "text": item.text}
        out["content"] = [part]
        return out

    def _render_response(self, resp: ActiveResponse, usage: dict[str, Any] | None) -> Event:
        c = self.config
        out: dict[str, Any] = {
            "id": resp.id,
            "object": "realtime.response",
            "status": resp.status,
            "status_details": resp.status_details,
            "output": [self.render_item(i) for i in resp.output],
            "conversation_id": self.conversation_id,
            "max_output_tokens": c.max_output_tokens,
            "usage": usage,
            "metadata": resp.metadata,
        }
        if self.dialect is Dialect.beta:
            out.update(
                modalities=["text", "audio"] if "audio" in resp.modalities else ["text"],
                voice=c.voice,
                output_audio_format="g711_ulaw",
                temperature=c.temperature,
            )
        else:
            out["output_modalities"] = resp.modalities
            out["audio"] = {"output": {"format": {"type": "audio/pcmu"}, "voice": c.voice}}
        return out

    def _item_added(self, item: Item, previous: str | None, done: bool = True) -> list[Event]:
        rendered = self.render_item(item)
        if self.dialect is Dialect.beta:
            return [self._ev("conversation.item.created", previous_item_id=previous, item=rendered)]
        events = [self._ev("conversation.item.added", previous_item_id=previous, item=rendered)]
        if done:
            events.append(
                self._ev("conversation.item.done", previous_item_id=previous, item=rendered)
            )
        return events

    def _insert(self, item: Item, after: str | None = None) -> str | None:
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

    # --- entry points -------------------------------------------------------------------
    def start(self) -> list[Action]:
        """Events sent on connect: ``session.created``."""
        return [self._ev("session.created", session=self.session_object())]

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
        self._record(self.events_received, event)
        client_event_id = event.get("event_id")
        if not isinstance(client_event_id, str):
            client_event_id = None
        type_ = event.get("type")
        try:
            if not isinstance(type_, str):
                raise ClientError(
                    "missing_required_parameter", "Missing required parameter: 'type'.", "type"
                )
            handler = self._handlers().get(type_)
            if handler is None:
                raise ClientError(
                    "invalid_value",
                    f"Invalid value: '{type_}'. Supported values are: "
                    + ", ".join(f"'{t}'" for t in self._handlers()),
                    "type",
                )
            return handler(event)
        except ClientError as exc:
            return [self.error(exc.code, exc.message, exc.param, client_event_id)]

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], list[Action]]]:
        return {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": self._truncate,
            "conversation.item.delete": self._item_delete,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    # --- session.update -----------------------------------------------------------------
    def _session_update(self, event: dict[str, Any]) -> list[Action]:
        s = _obj(event, "session", "session")
        c = self.config
        new = SessionConfig(**{f: getattr(c, f) for f in SessionConfig.__slots__})
        if self.dialect is Dialect.ga:
            self._update_ga(s, new)
        else:
            self._update_beta(s, new)
        if new.voice != c.voice and self._spoke:
            raise ClientError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.voice",
            )
        self.config = new
        self._apply_vad_config()
        return [self._ev("session.updated", session=self.session_object())]

    def _update_ga(self, s: dict[str, Any], new: SessionConfig) -> None:
        allowed = {
            "type", "model", "instructions", "tools", "tool_choice", "output_modalities",
            "max_output_tokens", "audio", "tracing", "truncation", "prompt", "include",
            "parallel_tool_calls", "reasoning",
        }  # fmt: skip
        _no_unknown(s, allowed, "session")
        if s.get("type") != "realtime":
            raise ClientError(
                "missing_required_parameter",
                "Missing required parameter: 'session.type' (must be 'realtime').",
                "session.type",
            )
        self._common_update(s, new, "output_modalities", "max_output_tokens")
        audio = s.get("audio")
        if audio is None:
            return
        if not isinstance(audio, dict):
            raise ClientError("invalid_type", "'session.audio' must be an object.", "session.audio")
        inp = audio.get("input") or {}
        out = audio.get("output") or {}
        for part, obj in (("input", inp), ("output", out)):
            fmt = obj.get("format")
            if fmt is not None:
                kind = fmt.get("type") if isinstance(fmt, dict) else fmt
                if kind != "audio/pcmu":
                    raise ClientError(
                        "unsupported_audio_format",
                        f"The local engine only supports audio/pcmu (G.711 μ-law 8 kHz), "
                        f"got {kind!r}.",
                        f"session.audio.{part}.format",
                    )
        if "turn_detection" in inp:
            new.turn_detection = _turn_detection(
                inp["turn_detection"], "session.audio.input.turn_detection"
            )
        if "transcription" in inp:
            new.transcription = _transcription(
                inp["transcription"], "session.audio.input.transcription"
            )
        if "voice" in out:
            new.voice = _str(out["voice"], "session.audio.output.voice")
        if "speed" in out:
            new.speed = float(out["speed"])

    def _update_beta(self, s: dict[str, Any], new: SessionConfig) -> None:
        allowed = {
            "model", "instructions", "tools", "tool_choice", "modalities", "voice",
            "max_response_output_tokens", "input_audio_format", "output_audio_format",
            "turn_detection", "input_audio_transcription", "temperature",
            "input_audio_noise_reduction", "speed", "tracing", "client_secret",
        }  # fmt: skip
        _no_unknown(s, allowed, "session")
        self._common_update(s, new, "modalities", "max_response_output_tokens")
        for key in ("input_audio_format", "output_audio_format"):
            if key in s and s[key] != "g711_ulaw":
                raise ClientError(
                    "unsupported_audio_format",
                    f"The local engine only supports g711_ulaw, got {s[key]!r}.",
                    f"session.{key}",
                )
        if "turn_detection" in s:
            new.turn_detection = _turn_detection(s["turn_detection"], "session.turn_detection")
        if "input_audio_transcription" in s:
            new.transcription = _transcription(
                s["input_audio_transcription"], "session.input_audio_transcription"
            )
        if "voice" in s:
            new.voice = _str(s["voice"], "session.voice")
        if "temperature" in s:
            new.temperature = float(s["temperature"])
        if "speed" in s:
            new.speed = float(s["speed"])

    def _common_update(
        self, s: dict[str, Any], new: SessionConfig, modalities_key: str, max_key: str
    ) -> None:
        if "instructions" in s:
            new.instructions = _str(s["instructions"], "session.instructions")
        if "tools" in s:
            new.tools = _tools(s["tools"])
        if "tool_choice" in s:
            tc = s["tool_choice"]
            if not (tc in ("auto", "none", "required") or isinstance(tc, dict)):
                raise ClientError(
                    "invalid_value", f"Invalid tool_choice {tc!r}.", "session.tool_choice"
                )
            new.tool_choice = tc
        if modalities_key in s:
            mods = s[modalities_key]
            if not isinstance(mods, list) or not mods or set(mods) - {"text", "audio"}:
                raise ClientError(
                    "invalid_value",
                    f"'{modalities_key}' must be a list of 'text'/'audio'.",
                    f"session.{modalities_key}",
                )
            new.output_modalities = ["audio"] if "audio" in mods else ["text"]
        if max_key in s:
            mx = s[max_key]
            if not (mx == "inf" or (isinstance(mx, int) and 1 <= mx <= 4096)):
                raise ClientError(
                    "invalid_value", f"'{max_key}' must be 1-4096 or 'inf'.", f"session.{max_key}"
                )
            new.max_output_tokens = mx

    def _apply_vad_config(self) -> None:
        td = self.config.turn_detection
        if td is None:
            self._segmenter = None
            self._speech_item_id = None
            return
        silence = td.silence_duration_ms
        if td.type == "semantic_vad":
            silence = {"low": 1200, "medium": 800, "high": 400}.get(td.eagerness or "auto", 800)
        if self._segmenter is None:
            if self._scorer is None:
                self._scorer = self._scorer_factory()
            self._segmenter = VadSegmenter(self._scorer, td.threshold, silence)
        else:
            self._segmenter.threshold = td.threshold
            self._segmenter.silence_duration_ms = silence

    # --- input audio --------------------------------------------------------------------
    def _append(self, event: dict[str, Any]) -> list[Action]:
        b64 = event.get("audio")
        if not isinstance(b64, str):
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'audio'.", "audio"
            )
        try:
            audio = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ClientError("invalid_value", f"Invalid base64 audio: {exc}", "audio") from exc
        if self._segmenter is None and self.config.turn_detection is not None:
            self._apply_vad_config()
        self._buffer += audio
        self.timeline_bytes += len(audio)
        actions: list[Action] = []
        td = self.config.turn_detection
        seg = self._segmenter
        if td is None or seg is None:
            self._cap_buffer(MAX_TURN_AUDIO_MS)
            return actions
        for vad_event in seg.feed(audio):
            if isinstance(vad_event, SpeechStart):
                actions += self._speech_started(vad_event, td)
            elif isinstance(vad_event, SpeechEnd):
                actions += self._speech_stopped(vad_event, td)
            elif isinstance(vad_event, SpeechPause) and self._speech_item_id is not None:
                self._pause = (self._speech_item_id, vad_event.end_ms)
                audio_so_far = self._buffer_slice(self._speech_start_ms, vad_event.at_ms)
                actions.append(Speculate(self._pause, audio_so_far, self._prompt()))
        if not seg.in_speech:
            self._cap_buffer(td.prefix_padding_ms + IDLE_KEEP_MS)
            actions += self._check_idle(td)
        else:
            self._cap_buffer(MAX_TURN_AUDIO_MS)
        return actions

    def _cap_buffer(self, keep_ms: int) -> None:
        excess = len(self._buffer) - keep_ms * BYTES_PER_MS
        if excess > 0:
            del self._buffer[:excess]

    def _buffer_slice(self, start_ms: int, end_ms: int) -> bytes:
        base = self.timeline_bytes - len(self._buffer)
        lo = max(0, start_ms * BYTES_PER_MS - base)
        hi = max(lo, end_ms * BYTES_PER_MS - base)
        return bytes(self._buffer[lo:hi])

    def _drop_buffer_until(self, ms: int) -> None:
        base = self.timeline_bytes - len(self._buffer)
        cut = max(0, ms * BYTES_PER_MS - base)
        del self._buffer[:cut]

    def _speech_started(self, ev: SpeechStart, td: TurnDetection) -> list[Action]:
        start = max(0, ev.onset_ms - td.prefix_padding_ms)
        self._speech_start_ms = start
        self._speech_item_id = self._new_id("item")
        actions: list[Action] = [
            self._ev(
                "input_audio_buffer.speech_started",
                audio_start_ms=start,
                item_id=self._speech_item_id,
            )
        ]
        if self.active is not None and td.interrupt_response:
            actions += self._cancel(self.active, "turn_detected")
        return actions

    def _speech_stopped(self, ev: SpeechEnd, td: TurnDetection) -> list[Action]:
        item_id = self._speech_item_id or self._new_id("item")
        self._speech_item_id = None
        actions: list[Action] = [
            self._ev("input_audio_buffer.speech_stopped", audio_end_ms=ev.end_ms, item_id=item_id)
        ]
        audio = self._buffer_slice(self._speech_start_ms, ev.commit_ms)
        self._drop_buffer_until(ev.commit_ms)
        self._idle_ref_ms = ev.commit_ms
        speculation = self._pause if self._pause == (item_id, ev.end_ms) else None
        self._pause = None
        actions += self._commit_audio(item_id, audio, td.create_response, speculation)
        return actions

    def _prompt(self) -> str | None:
        t = self.config.transcription
        prompt = t.get("prompt") if t else None
        return prompt if isinstance(prompt, str) and prompt else None

    def _commit_audio(
        self,
        item_id: str,
        audio: bytes,
        respond: bool,
        speculation: tuple[str, int] | None = None,
    ) -> list[Action]:
        turn = self._audio_turns
        self._audio_turns += 1
        item = Item(
            id=item_id,
            type="message",
            role="user",
            content_type="input_audio",
            audio_ms=len(audio) // BYTES_PER_MS,
            turn_index=turn,
            show_transcript=self.config.transcription is not None,
        )
        previous = self._insert(item)
        actions: list[Action] = [
            self._ev("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        ]
        actions += self._item_added(item, previous)
        actions.append(Transcribe(item_id, audio, turn, respond, speculation, self._prompt()))
        return actions

    def transcription_failed(self, action: Transcribe, message: str) -> list[Action]:
        """A :class:`Transcribe` action failed: ``…input_audio_transcription.failed``; the
        turn is then answered as if nothing intelligible was said."""
        item = self._by_id.get(action.item_id)
        actions: list[Action] = []
        if item is not None and self.config.transcription is not None:
            actions.append(
                self._ev(
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
            )
        if action.respond and self.active is None:
            actions += self._start_response({})
        return actions

    def transcribed(self, action: Transcribe, transcript: str) -> list[Action]:
        """Result of a :class:`Transcribe` action: transcription events, maybe a response."""
        item = self._by_id.get(action.item_id)
        actions: list[Action] = []
        if item is not None:
            item.text = transcript
            if self.config.transcription is not None:
                words = transcript.split(" ")
                for i, word in enumerate(words):
                    delta = word if i == len(words) - 1 else word + " "
                    actions.append(
                        self._ev(
                            "conversation.item.input_audio_transcription.delta",
                            item_id=item.id,
                            content_index=0,
                            delta=delta,
                        )
                    )
                audio_tokens = max(1, item.audio_ms // 100)
                text_tokens = _tokens_for_text(transcript)
                actions.append(
                    self._ev(
                        "conversation.item.input_audio_transcription.completed",
                        item_id=item.id,
                        content_index=0,
                        transcript=transcript,
                        usage={
                            "type": "tokens",
                            "input_tokens": audio_tokens,
                            "output_tokens": text_tokens,
                            "total_tokens": audio_tokens + text_tokens,
                            "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
                        },
                    )
                )
        if action.respond and self.active is None:
            actions += self._start_response({})
        return actions

    def _check_idle(self, td: TurnDetection) -> list[Action]:
        if (
            self.dialect is not Dialect.ga
            or td.idle_timeout_ms is None
            or self.active is not None
            or self.timeline_ms - self._idle_ref_ms < td.idle_timeout_ms
        ):
            return []
        start, end = self._idle_ref_ms, self.timeline_ms
        self._idle_ref_ms = end
        item_id = self._new_id("item")
        actions: list[Action] = [
            self._ev(
                "input_audio_buffer.timeout_triggered",
                item_id=item_id,
                audio_start_ms=start,
                audio_end_ms=end,
            )
        ]
        item = Item(
            id=item_id,
            type="message",
            role="user",
            content_type="input_audio",
            audio_ms=end - start,
            idle_timeout=True,
            show_transcript=False,
        )
        self._buffer.clear()
        previous = self._insert(item)
        actions.append(
            self._ev("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        )
        actions += self._item_added(item, previous)
        actions += self._start_response({})
        return actions

    def _commit(self, event: dict[str, Any]) -> list[Action]:
        ms = len(self._buffer) // BYTES_PER_MS
        if ms < MIN_COMMIT_MS:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms}.00ms of audio.",
            )
        audio = bytes(self._buffer)
        self._buffer.clear()
        item_id = self._speech_item_id or self._new_id("item")
        self._speech_item_id = None
        self._pause = None
        if self._segmenter is not None:
            self._segmenter.reset_turn()
        return self._commit_audio(item_id, audio, respond=False)

    def _clear(self, event: dict[str, Any]) -> list[Action]:
        self._buffer.clear()
        self._speech_item_id = None
        self._pause = None
        if self._segmenter is not None:
            self._segmenter.reset_turn()
        return [self._ev("input_audio_buffer.cleared")]

    # --- conversation items -------------------------------------------------------------
    def _item_create(self, event: dict[str, Any]) -> list[Action]:
        raw = _obj(event, "item", "item")
        after = event.get("previous_item_id")
        if after is not None and after != "root" and after not in self._by_id:
            raise ClientError(
                "invalid_value",
                f"Previous item with id '{after}' does not exist.",
                "previous_item_id",
            )
        item_id = raw.get("id") or self._new_id("item")
        if not isinstance(item_id, str) or item_id in self._by_id:
            raise ClientError("invalid_value", f"Item id {item_id!r} already exists.", "item.id")
        type_ = raw.get("type")
        item: Item
        if type_ == "message":
            item = self._message_from_client(item_id, raw)
        elif type_ == "function_call_output":
            call_id = _str(raw.get("call_id"), "item.call_id")
            call = self._call(call_id)
            if call is None:
                raise ClientError(
                    "invalid_value",
                    f"No function call found with call_id '{call_id}'.",
                    "item.call_id",
                )
            output = _str(raw.get("output"), "item.output")
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
                call_id=_str(raw.get("call_id"), "item.call_id"),
                name=_str(raw.get("name"), "item.name"),
                arguments=_str(raw.get("arguments"), "item.arguments"),
            )
        else:
            raise ClientError(
                "invalid_value",
                f"Invalid value: {type_!r}. Supported values are: 'message', "
                "'function_call', 'function_call_output'.",
                "item.type",
            )
        previous = self._insert(item, after)
        return list(self._item_added(item, previous))

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
                text=_str(text, "item.content"),
            )
        if ptype == "input_text":
            text = _str(part.get("text"), "item.content[0].text")
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

    def _call(self, call_id: str) -> Item | None:
        for item in reversed(self.items):
            if item.type == "function_call" and item.call_id == call_id:
                return item
        return None

    def _item_delete(self, event: dict[str, Any]) -> list[Action]:
        item_id = _str(event.get("item_id"), "item_id")
        item = self._by_id.pop(item_id, None)
        if item is None:
            raise ClientError(
                "invalid_value", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        self.items.remove(item)
        return [self._ev("conversation.item.deleted", item_id=item_id)]

    def _item_retrieve(self, event: dict[str, Any]) -> list[Action]:
        item_id = _str(event.get("item_id"), "item_id")
        item = self._by_id.get(item_id)
        if item is None:
            raise ClientError(
                "invalid_value", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        return [self._ev("conversation.item.retrieved", item=self.render_item(item))]

    def _truncate(self, event: dict[str, Any]) -> list[Action]:
        item_id = _str(event.get("item_id"), "item_id")
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
        actions: list[Action] = []
        resp = self.active
        if resp is not None and resp.message is item:
            # The client cut an item still being generated: stop generating it.
            actions += self._cancel(resp, "client_cancelled")
        generated = item.generated_ms
        if item.audio_ms > 0:
            item.text = _cut_words(item.text, audio_end_ms / item.audio_ms)
        item.audio_ms = audio_end_ms
        self.truncations.append(
            {"item_id": item_id, "audio_end_ms": audio_end_ms, "generated_ms": generated}
        )
        actions.append(
            self._ev(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=audio_end_ms,
            )
        )
        return actions

    # --- responses ----------------------------------------------------------------------
    def _response_create(self, event: dict[str, Any]) -> list[Action]:
        if self.active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError("invalid_type", "'response' must be an object.", "response")
        return self._start_response(params)

    def _next_input(self) -> tuple[ReplyInput, Item | None]:
        for item in reversed(self.items):
            if item.role == "assistant" or item.type == "function_call":
                continue
            if item.role == "system" or item.answered:
                break
            if item.type == "function_call_output":
                call = self._call(item.call_id or "")
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

    def _start_response(self, params: dict[str, Any]) -> list[Action]:
        c = self.config
        instructions = params.get("instructions")
        if not isinstance(instructions, str):
            instructions = c.instructions
        key = "output_modalities" if self.dialect is Dialect.ga else "modalities"
        mods = params.get(key)
        modalities = list(c.output_modalities)
        if isinstance(mods, list) and mods:
            modalities = ["audio"] if "audio" in mods else ["text"]
        reply_input, input_item = self._next_input()
        resp = ActiveResponse(
            id=self._new_id("resp"),
            instructions=instructions,
            modalities=modalities,
            metadata=params.get("metadata"),
            reply_input=reply_input,
            input_item=input_item,
        )
        resp.input_tokens = self._context_tokens(instructions)
        self.active = resp
        self.responses.append(resp.id)
        return [
            self._ev("response.created", response=self._render_response(resp, None)),
            Generate(resp),
        ]

    def reply_request(self, resp: ActiveResponse) -> ReplyRequest:
        """What the responder needs to produce ``resp``'s reply."""
        c = self.config
        tool_choice = c.tool_choice if isinstance(c.tool_choice, str) else "auto"
        forced = None
        if isinstance(c.tool_choice, dict) and isinstance(c.tool_choice.get("name"), str):
            forced = str(c.tool_choice["name"])
        tools = tuple(t for t in c.tools if t.get("type", "function") == "function")
        names = tuple(str(t.get("name")) for t in tools)
        history = tuple(i.text for i in self.items if i.type == "message" and i.text)
        inp = resp.reply_input
        item = resp.input_item
        if inp.kind == "audio" and item is not None and item.text != inp.text:
            # Transcription may have finished after the response was created.
            inp = ReplyInput("audio", text=item.text, turn_index=inp.turn_index)
        return ReplyRequest(
            resp.instructions,
            inp,
            names,
            tool_choice,
            history,
            tools=tools,
            forced_tool=forced,
            session_instructions=c.instructions,
        )

    def is_active(self, resp: ActiveResponse) -> bool:
        """True while ``resp`` is the active response (not cancelled/finished)."""
        return self.active is resp

    def apply_reply(self, resp: ActiveResponse, reply: Reply) -> None:
        """Mark the input answered if the reply answered it."""
        if reply.answers_input and resp.input_item is not None:
            resp.input_item.answered = True

    def begin_message(self, resp: ActiveResponse) -> list[Action]:
        """Open an assistant message (audio or text per the response's modalities)."""
        audio = "audio" in resp.modalities
        item = Item(
            id=self._new_id("item"),
            type="message",
            role="assistant",
            status="in_progress",
            content_type="audio" if audio else "text",
        )
        resp.message = item
        resp.output.append(item)
        previous = self._insert(item)
        idx = len(resp.output) - 1
        actions: list[Action] = [
            self._ev(
                "response.output_item.added",
                response_id=resp.id,
                output_index=idx,
                item=self.render_item(item),
            )
        ]
        actions += self._item_added(item, previous, done=False)
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        actions.append(
            self._ev(
                "response.content_part.added",
                response_id=resp.id,
                item_id=item.id,
                output_index=idx,
                content_index=0,
                part=part,
            )
        )
        return actions

    def message_delta(self, resp: ActiveResponse, audio: bytes, text: str) -> list[Action]:
        """One streamed step: an audio delta (8 kHz μ-law) and/or its transcript text."""
        item = resp.message
        if item is None:
            return []
        idx = len(resp.output) - 1
        common = {"response_id": resp.id, "item_id": item.id, "output_index": idx}
        actions: list[Action] = []
        if item.content_type == "text":
            if text:
                item.text += text
                actions.append(
                    self._ev("response.output_text.delta", **common, content_index=0, delta=text)
                )
            return actions
        if audio:
            self._spoke = True
            item.audio_ms += len(audio) // BYTES_PER_MS
            item.generated_ms = item.audio_ms
            actions.append(
                self._ev(
                    "response.output_audio.delta",
                    **common,
                    content_index=0,
                    delta=base64.b64encode(audio).decode("ascii"),
                )
            )
        if text:
            item.text += text
            actions.append(
                self._ev(
                    "response.output_audio_transcript.delta", **common, content_index=0, delta=text
                )
            )
        return actions

    def end_message(self, resp: ActiveResponse, status: str = "completed") -> list[Action]:
        """Close the open assistant message."""
        item = resp.message
        if item is None:
            return []
        resp.message = None
        item.status = status
        idx = resp.output.index(item)
        common = {"response_id": resp.id, "item_id": item.id, "output_index": idx}
        actions: list[Action] = []
        if item.content_type == "text":
            actions.append(
                self._ev("response.output_text.done", **common, content_index=0, text=item.text)
            )
            part = {"type": "text", "text": item.text}
        else:
            actions.append(self._ev("response.output_audio.done", **common, content_index=0))
            actions.append(
                self._ev(
                    "response.output_audio_transcript.done",
                    **common,
                    content_index=0,
                    transcript=item.text,
                )
            )
            part = {"type": "audio", "transcript": item.text}
        actions.append(self._ev("response.content_part.done", **common, content_index=0, part=part))
        actions += self._item_finished(resp, item, idx)
        return actions

    def _item_finished(self, resp: ActiveResponse, item: Item, idx: int) -> list[Action]:
        rendered = self.render_item(item)
        actions: list[Action] = [
            self._ev(
                "response.output_item.done", response_id=resp.id, output_index=idx, item=rendered
            )
        ]
        if self.dialect is Dialect.ga:
            pos = self.items.index(item) if item in self.items else 0
            previous = self.items[pos - 1].id if pos > 0 else None
            actions.append(
                self._ev("conversation.item.done", previous_item_id=previous, item=rendered)
            )
        return actions

    def function_call(
        self, resp: ActiveResponse, name: str, arguments: dict[str, Any]
    ) -> list[Action]:
        """A complete function call output item, arguments streamed in a few deltas."""
        args = orjson.dumps(arguments).decode()
        item = Item(
            id=self._new_id("item"),
            type="function_call",
            status="in_progress",
            call_id=self._new_id("call"),
            name=name,
        )
        resp.output.append(item)
        previous = self._insert(item)
        idx = len(resp.output) - 1
        actions: list[Action] = [
            self._ev(
                "response.output_item.added",
                response_id=resp.id,
                output_index=idx,
                item=self.render_item(item),
            )
        ]
        actions += self._item_added(item, previous, done=False)
        common = {"response_id": resp.id, "item_id": item.id, "output_index": idx}
        step = max(8, math.ceil(len(args) / 4))
        for i in range(0, len(args), step):
            actions.append(
                self._ev(
                    "response.function_call_arguments.delta",
                    **common,
                    call_id=item.call_id,
                    delta=args[i : i + step],
                )
            )
        item.arguments = args
        item.status = "completed"
        done: dict[str, Any] = {**common, "call_id": item.call_id, "arguments": args}
        if self.dialect is Dialect.ga:
            done["name"] = name
        actions.append(self._ev("response.function_call_arguments.done", **done))
        actions += self._item_finished(resp, item, idx)
        return actions

    def finish(self, resp: ActiveResponse) -> list[Action]:
        """Close ``resp`` as completed: ``response.done``."""
        if self.active is not resp:
            return []
        actions = self.end_message(resp)
        resp.status = "completed"
        self.active = None
        self._after_response(resp)
        actions.append(
            self._ev("response.done", response=self._render_response(resp, self._usage(resp)))
        )
        return actions

    def fail(self, resp: ActiveResponse, message: str) -> list[Action]:
        """Close ``resp`` as failed (e.g. TTS broke): ``response.done`` status failed."""
        if self.active is not resp:
            return []
        actions = self.end_message(resp, status="incomplete")
        resp.status = "failed"
        resp.status_details = {
            "type": "failed",
            "error": {"type": "server_error", "code": "engine_error", "message": message},
        }
        self.active = None
        self._after_response(resp)
        actions.append(
            self._ev("response.done", response=self._render_response(resp, self._usage(resp)))
        )
        return actions

    def _cancel(self, resp: ActiveResponse, reason: str) -> list[Action]:
        actions = self.end_message(resp, status="incomplete")
        resp.status = "cancelled"
        resp.status_details = {"type": "cancelled", "reason": reason}
        self.active = None
        self._after_response(resp)
        actions.append(
            self._ev("response.done", response=self._render_response(resp, self._usage(resp)))
        )
        return actions

    def _after_response(self, resp: ActiveResponse) -> None:
        audio_ms = sum(i.audio_ms for i in resp.output if i.content_type == "audio")
        self._idle_ref_ms = max(self._idle_ref_ms, self.timeline_ms + audio_ms)

    def _response_cancel(self, event: dict[str, Any]) -> list[Action]:
        resp = self.active
        wanted = event.get("response_id")
        if resp is None or (wanted is not None and wanted != resp.id):
            raise ClientError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found.",
                "response_id" if wanted is not None else None,
            )
        return self._cancel(resp, "client_cancelled")

    def _context_tokens(self, instructions: str) -> dict[str, int]:
        text = _tokens_for_text(instructions)
        audio = 0
        for item in self.items:
            text += _tokens_for_text(item.text) + _tokens_for_text(item.arguments)
            text += _tokens_for_text(item.output) + 4
            if item.content_type == "input_audio":
                audio += item.audio_ms // 100
            elif item.content_type == "audio":
                audio += item.audio_ms // 50
        for tool in self.config.tools:
            text += _tokens_for_text(orjson.dumps(tool).decode())
        return {"text": text, "audio": audio}

    def _usage(self, resp: ActiveResponse) -> dict[str, Any]:
        out_text = sum(
            _tokens_for_text(i.text) + _tokens_for_text(i.arguments) for i in resp.output
        )
        out_audio = sum(i.generated_ms // 50 for i in resp.output if i.content_type == "audio")
        in_text, in_audio = resp.input_tokens.get("text", 0), resp.input_tokens.get("audio", 0)
        inp, out = in_text + in_audio, out_text + out_audio
        return {
            "total_tokens": inp + out,
            "input_tokens": inp,
            "output_tokens": out,
            "input_token_details": {
                "text_tokens": in_text,
                "audio_tokens": in_audio,
                "cached_tokens": 0,
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }


# --- validation helpers -------------------------------------------------------------------
def _obj(event: dict[str, Any], key: str, param: str) -> dict[str, Any]:
    value = event.get(key)
    if value is None:
        raise ClientError(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    if not isinstance(value, dict):
        raise ClientError("invalid_type", f"'{param}' must be an object.", param)
    return value


def _str(value: Any, param: str) -> str:
    if value is None:
        raise ClientError(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    if not isinstance(value, str):
        raise ClientError("invalid_type", f"'{param}' must be a string.", param)
    return value


def _no_unknown(obj: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise ClientError(
                "unknown_parameter", f"Unknown parameter: '{prefix}.{key}'.", f"{prefix}.{key}"
            )


def _turn_detection(raw: Any, param: str) -> TurnDetection | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ClientError("invalid_type", f"'{param}' must be an object or null.", param)
    kind = raw.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ClientError(
            "invalid_value", f"Invalid turn detection type {kind!r}.", f"{param}.type"
        )
    td = TurnDetection(type=kind)
    try:
        if raw.get("threshold") is not None:
            td.threshold = float(raw["threshold"])
            if not 0.0 <= td.threshold <= 1.0:
                raise ValueError("threshold must be within 0..1")
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            if raw.get(key) is not None:
                value = int(raw[key])
                if value < 0:
                    raise ValueError(f"{key} must be >= 0")
                setattr(td, key, value)
        for key in ("create_response", "interrupt_response"):
            if raw.get(key) is not None:
                setattr(td, key, bool(raw[key]))
        if raw.get("idle_timeout_ms") is not None:
            td.idle_timeout_ms = int(raw["idle_timeout_ms"])
        if raw.get("eagerness") is not None:
            td.eagerness = str(raw["eagerness"])
    except (TypeError, ValueError) as exc:
        raise ClientError("invalid_value", f"Invalid {param}: {exc}", param) from exc
    return td


def _transcription(raw: Any, param: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ClientError("invalid_type", f"'{param}' must be an object or null.", param)
    out: dict[str, Any] = {"model": raw.get("model") or "whisper-1"}
    for key in ("language", "prompt"):
        if raw.get(key) is not None:
            out[key] = raw[key]
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ClientError("invalid_type", "'session.tools' must be a list.", "session.tools")
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ClientError(
                "missing_required_parameter",
                f"Missing required parameter: 'session.tools[{i}].name'.",
                f"session.tools[{i}].name",
            )
        if tool.get("type", "function") != "function":
            raise ClientError(
                "invalid_value",
                "The local engine supports only function tools.",
                f"session.tools[{i}].type",
            )
    return [dict(t) for t in raw]


def _cut_words(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``, cut back to a word boundary."""
    if fraction >= 1:
        return text
    cut = int(len(text) * max(0.0, fraction))
    if cut < len(text) and cut > 0 and not text[cut].isspace():
        space = text.rfind(" ", 0, cut)
        cut = space if space > 0 else cut
    return text[:cut].rstrip()


def split_text(text: str, parts: int) -> list[str]:
    """Split ``text`` into ``parts`` consecutive pieces at word boundaries (some may be "")."""
    if parts <= 1:
        return [text]
    words = text.split(" ")
    out: list[str] = []
    prev = 0
    for i in range(1, parts + 1):
        upto = round(len(words) * i / parts)
        chunk = " ".join(words[prev:upto])
        if chunk and upto < len(words):
            chunk += " "
        out.append(chunk)
        prev = upto
    return out
