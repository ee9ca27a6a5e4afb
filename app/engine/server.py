"""The engine's I/O layer: an OpenAI-Realtime-compatible WebSocket server on loopback.

Endpoints (protocols.md §1 "Connecting"):

- ``/v1/realtime?model=M``: GA events, or beta events with header ``OpenAI-Beta: realtime=v1``
- ``/openai/v1/realtime?model=D``: GA (Azure GA)
- ``/openai/realtime?api-version=V&deployment=D``: beta (Azure preview)

A handshake must carry ``Authorization: Bearer <any>`` or ``api-key: <any>`` (else 401).
Each connection runs one :class:`~app.engine.session.EngineSession` (sans-I/O) and one
``asyncio.TaskGroup`` owning its writer and response tasks. Output audio is streamed in
100 ms (800 byte) μ-law deltas at ``pace`` times real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from app.audio import BYTES_PER_MS
from app.engine.responder import Responder, ScriptedResponder
from app.engine.scenario import Scenario
from app.engine.session import (
    OUTPUT_CHUNK_MS,
    Action,
    ActiveResponse,
    Dialect,
    EngineSession,
    Generate,
    Transcribe,
    split_text,
)
from app.engine.tts import Tts
from app.engine.vad import SpeechScorer, make_scorer

log = logging.getLogger(__name__)

#: Server events queued per connection before the producers wait (bounded send queue).
SEND_QUEUE_MAX = 1024
#: Largest client message accepted (bytes); the real service caps the input buffer at 15 MiB.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Sessions kept in ``EngineServer.sessions`` for introspection (oldest dropped first).
SESSIONS_KEPT = 256
DEFAULT_MODEL = "gpt-realtime"
#: Model reported on the Azure preview endpoint (the deployment name is not a model).
AZURE_PREVIEW_MODEL = "gpt-4o-realtime-preview"


def route(path: str, headers: Headers) -> tuple[Dialect, str] | None:
    """(dialect, model) for a handshake path + headers, or None if the path is unknown."""
    parts = urlsplit(path)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if v}
    p = parts.path.rstrip("/")
    if p in ("/v1/realtime", "/realtime"):
        beta = "realtime=v1" in headers.get("OpenAI-Beta", "").replace(" ", "")
        return (Dialect.beta if beta else Dialect.ga), query.get("model", DEFAULT_MODEL)
    if p == "/openai/v1/realtime":
        return Dialect.ga, query.get("model") or query.get("deployment") or DEFAULT_MODEL
    if p == "/openai/realtime":
        # Azure reports the deployment's underlying model, not the deployment name.
        return Dialect.beta, AZURE_PREVIEW_MODEL
    return None


def authorized(headers: Headers) -> bool:
    """True if the handshake carries ``Authorization: Bearer X`` or ``api-key: X``."""
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return True
    return bool(headers.get("api-key", "").strip())


class _Connection:
    """One client connection: reader loop, bounded writer, response generation."""

    def __init__(
        self,
        ws: ServerConnection,
        session: EngineSession,
        responder: Responder,
        tts: Tts,
        pace: float,
    ) -> None:
        self.ws, self.session, self.responder, self.tts, self.pace = (
            ws,
            session,
            responder,
            tts,
            pace,
        )
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=SEND_QUEUE_MAX)
        self._send_lock = asyncio.Lock()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            writer = tg.create_task(self._writer())
            try:
                await self._dispatch(self.session.start())
                async for message in self.ws:
                    await self._dispatch(self.session.handle_raw(message))
            except ConnectionClosed:
                pass
            finally:
                for task in (*self._tasks, writer):
                    task.cancel()

    async def _writer(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                event = await self._queue.get()
                await self.ws.send(orjson.dumps(event).decode())

    async def _emit(self, events: Sequence[Action]) -> None:
        async with self._send_lock:
            for event in events:
                if isinstance(event, dict):
                    await self._queue.put(event)

    async def _dispatch(self, actions: Sequence[Action]) -> None:
        """Send events in order; perform transcription and response actions."""
        batch: list[Action] = []
        for action in actions:
            if isinstance(action, dict):
                batch.append(action)
                continue
            await self._emit(batch)
            batch = []
            if isinstance(action, Transcribe):
                transcript = await self.responder.transcribe(action.audio, action.turn_index)
                await self._dispatch(self.session.transcribed(action, transcript))
            elif isinstance(action, Generate):
                self._start_generate(action.response)
        await self._emit(batch)

    def _start_generate(self, resp: ActiveResponse) -> None:
        assert self._tg is not None
        task = self._tg.create_task(self._generate(resp))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _generate(self, resp: ActiveResponse) -> None:
        """SCRIPTED reply → TTS → paced audio deltas → function call → response.done."""
        s = self.session
        try:
            reply = await self.responder.respond(s.reply_request(resp))
            if not s.is_active(resp):
                return
            s.apply_reply(resp, reply)
            if reply.say:
                await self._speak(resp, reply.say)
                if not s.is_active(resp):
                    return
                await self._emit(s.end_message(resp))
            if reply.function_call is not None:
                call = reply.function_call
                await self._emit(s.function_call(resp, call.name, call.arguments))
            await self._emit(s.finish(resp))
        except Exception as exc:  # the connection survives a broken reply
            log.exception("response %s failed", resp.id)
            await self._emit(s.fail(resp, f"{type(exc).__name__}: {exc}"))

    async def _speak(self, resp: ActiveResponse, text: str) -> None:
        s = self.session
        if "audio" not in resp.modalities:
            await self._emit(s.begin_message(resp))
            for piece in split_text(text, max(1, len(text.split()))):
                await self._emit(s.message_delta(resp, b"", piece))
            return
        audio = await self.tts.synthesize(text, s.config.voice)
        if not s.is_active(resp):
            return
        await self._emit(s.begin_message(resp))
        step = OUTPUT_CHUNK_MS * BYTES_PER_MS
        chunks = [audio[i : i + step] for i in range(0, len(audio), step)] or [b""]
        texts = split_text(text, len(chunks))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent_ms = 0.0
        for chunk, piece in zip(chunks, texts, strict=True):
            if not s.is_active(resp):
                return
            await self._emit(s.message_delta(resp, chunk, piece))
            sent_ms += len(chunk) / BYTES_PER_MS
            delay = 0.0 if math.isinf(self.pace) else t0 + sent_ms / 1000 / self.pace - loop.time()
            await asyncio.sleep(max(0.0, delay))


class EngineServer:
    """Local Realtime server (GA + beta dialects) replying from a SCRIPTED scenario.

    ``pace``: output audio is streamed this many times faster than real time
    (``math.inf``: as fast as possible). ``port=0`` binds a free port (see ``.port``).
    ``sessions``: the per-connection :class:`EngineSession` objects (introspection:
    ``truncations``, ``events_sent``, ``events_received``).
    """

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        port: int = 0,
        pace: float = 4.0,
        *,
        tts: Tts | None = None,
        responder_factory: Callable[[Scenario], Responder] = ScriptedResponder,
        scorer_factory: Callable[[], SpeechScorer] = make_scorer,
    ) -> None:
        if pace <= 0:
            raise ValueError("pace must be > 0")
        self.scenario, self.host, self.port, self.pace = scenario, host, port, pace
        self.tts = tts or Tts()
        self.responder_factory = responder_factory
        self.scorer_factory = scorer_factory
        self.sessions: list[EngineSession] = []
        self._server: Server | None = None

    async def start(self) -> None:
        """Bind and start serving; raises TtsUnavailableError if no TTS binary exists."""
        _ = self.tts.backend  # fail fast with a clear message
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])
        log.info("engine listening on ws://%s:%d/v1/realtime", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> EngineServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if route(request.path, request.headers) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown path.\n")
        if not authorized(request.headers):
            return connection.respond(
                HTTPStatus.UNAUTHORIZED, "Missing 'Authorization: Bearer ...' or 'api-key'.\n"
            )
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        routed = route(request.path, request.headers)
        assert routed is not None
        dialect, model = routed
        session = EngineSession(dialect, model, self.scorer_factory)
        self.sessions.append(session)
        del self.sessions[:-SESSIONS_KEPT]
        log.info("session %s connected (%s, model %s)", session.id, dialect, model)
        conn = _Connection(ws, session, self.responder_factory(self.scenario), self.tts, self.pace)
        await conn.run()
        log.info("session %s closed", session.id)


def run(host: str, port: int, scenario_path: Path | None, log_level: str = "INFO") -> None:
    """Run the engine until SIGINT/SIGTERM (``switchboard engine``)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    scenario = Scenario.load(scenario_path)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with EngineServer(scenario, host, port):
            await stop.wait()

    asyncio.run(main())
