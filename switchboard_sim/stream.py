"""The media stream of a simulated call, played as Twilio does (docs/protocols.md §2
"Media Streams messages").

Open the WebSocket (handshake signed over the stream URL with empty params), send
``connected`` and ``start``, then a 20 ms ``media`` frame (160 bytes of 8 kHz μ-law) on
an absolute deadline schedule: caller speech from the :class:`~switchboard_sim.calls.CallScript`,
silence (0xFF) between utterances, like a real phone line. Play the server's outbound
``media`` in real time (:class:`~switchboard_sim.playback.Playback`), echo each ``mark`` once its
audio has played, and on ``clear`` drop the queued audio and echo all pending marks at
once. The stream ends when the server closes the socket, the call is ended (REST
update, :meth:`~switchboard_sim.calls.LiveCall.request_end`), the caller hangs up or
``max_duration_s`` passes; ``stop`` is sent if the socket is still open.

Times are ms on the call timeline (:mod:`switchboard_sim.calls`): t=0 is when ``start`` is sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections import deque
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from app.audio import FRAME_BYTES, FRAME_MS, ULAW_SILENCE
from switchboard_sim.callbacks import Webhooks, stream_status_params
from switchboard_sim.calls import (
    CallScript,
    LiveCall,
    MarkEcho,
    SimulatedCallResult,
    UtteranceRecord,
)
from switchboard_sim.playback import Playback, PlaybackOverflow

#: Largest message accepted from the server on the media socket (bytes).
MAX_WS_MESSAGE_BYTES = 1 << 20
#: WebSocket open / close handshake timeouts (s).
WS_OPEN_TIMEOUT_S = 10.0
WS_CLOSE_TIMEOUT_S = 2.0


def _frames(ulaw: bytes) -> list[bytes]:
    """Cut μ-law into 160-byte (20 ms) frames, the last padded with silence."""
    out = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        out[-1] = out[-1] + ULAW_SILENCE * (FRAME_BYTES - len(out[-1]))
    return out


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


class MediaStream:
    """The media stream of one call, from the WebSocket handshake to its close.

    ``webhooks`` signs the handshake (over the TwiML ``<Stream url>``, empty params) and
    posts ``status_callback`` events; ``connect_url`` (None: the stream URL) is where
    the socket really connects, e.g. when the public URL is a tunnel. What is observed
    lands in ``result`` (its ``stream_sid`` names the stream).
    """

    def __init__(
        self,
        webhooks: Webhooks,
        http: httpx.AsyncClient,
        call: LiveCall,
        script: CallScript,
        result: SimulatedCallResult,
        *,
        connect_url: str | None = None,
        status_callback: str | None = None,
    ) -> None:
        self.webhooks = webhooks
        self.http = http
        self.call = call
        self.script = script
        self.result = result
        self.connect_url = connect_url
        self.status_callback = status_callback
        self.playback = Playback()
        self.speed = FRAME_MS / script.frame_interval_ms
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.ws: ClientConnection | None = None
        self.send_lock = asyncio.Lock()
        self.closing = False
        self.seq = 0
        self.chunk = 0
        self.echo_queue: deque[MarkEcho] = deque()
        self.utterance_frames = [_frames(u) for u in script.caller_audio]
        self.next_utterance = 0
        self.current: list[bytes] | None = None  # frames left of the utterance being sent
        self.current_record: UtteranceRecord | None = None
        self.wait_since = 0.0  # call ms since which the caller waits for the agent
        self.agent_spoke_at: float | None = None  # first agent audio since wait_since
        self.dtmf = sorted(script.dtmf, key=lambda d: d[0])
        self.raw = sorted(script.extra_raw_messages, key=lambda r: r[0])
        self.end_ms: float | None = None

    # ------------------------------------------------------------------ utils
    def now_ms(self) -> float:
        """Current time on the call timeline (ms since ``start`` was sent)."""
        return (self.loop.time() - self.t0) * 1000.0 * self.speed

    def error(self, msg: str) -> None:
        self.result.add_error(msg)

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    # ------------------------------------------------------------------- flow
    async def run(self, url: str) -> None:
        """Connect to the stream ``url``, run the call's stream to its end and close it.

        Never raises for call failures: a refused handshake ends the call ``rejected``;
        the rest lands in ``result.errors`` / ``call.end_reason``.
        """
        r = self.result
        headers = {"X-Twilio-Signature": self.webhooks.sign(url, {})}
        try:
            ws = await connect(
                self.connect_url or url,
                additional_headers=headers,
                max_size=MAX_WS_MESSAGE_BYTES,
                open_timeout=WS_OPEN_TIMEOUT_S,
                close_timeout=WS_CLOSE_TIMEOUT_S,
                user_agent_header="Twilio.TmeWs/1.0",
            )
        except InvalidStatus as exc:
            self.error(f"media WebSocket handshake refused: HTTP {exc.response.status_code}")
            self.call.request_end("rejected")
            return
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self.error(f"media WebSocket connect failed: {exc!r}")
            self.call.request_end("rejected")
            return
        self.ws = ws
        try:
            try:
                await ws.send(
                    _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
                )
                self.t0 = self.loop.time()
                await ws.send(_dumps(self._start_message()))
            except ConnectionClosed:
                self.call.request_end("server_closed")
                return
            await self._stream_status("stream-started")
            await self._run_tasks()
        finally:
            if ws.state is not State.CLOSED:
                await ws.close()
            end = self.end_ms if self.end_ms is not None else self.now_ms()
            self.playback.advance(end)  # what was still playing until the end was heard
            r.duration_ms = end
            r.agent_audio = self.playback.recording(until_ms=end)
            r.played_bytes_total = self.playback.played_bytes_total
            r.clears = list(self.playback.clears)
            r.played_spans = self.playback.played_spans()
            r.ws_close_code = ws.close_code
            r.ws_close_reason = ws.close_reason
            await self._stream_status("stream-stopped")

    async def _run_tasks(self) -> None:
        """Sender, receiver and end supervisor in one task group, under a wall-clock cap."""
        wall_cap = self.script.max_duration_s / self.speed + 10.0
        try:
            async with asyncio.timeout(wall_cap), asyncio.TaskGroup() as tg:
                tg.create_task(self._sender(), name=f"sim-send-{self.call.sid}")
                tg.create_task(self._receiver(), name=f"sim-recv-{self.call.sid}")
                tg.create_task(self._supervisor(), name=f"sim-end-{self.call.sid}")
        except* TimeoutError:
            self.error("call tasks did not finish in time")
            self.call.request_end("timeout")
        except* Exception as eg:
            for exc in eg.exceptions:
                self.error(f"simulator task failed: {exc!r}")
            self.call.request_end("server_closed")

    def _start_message(self) -> dict[str, Any]:
        r = self.result
        return {
            "event": "start",
            "sequenceNumber": self.next_seq(),
            "start": {
                "accountSid": self.call.account_sid,
                "streamSid": r.stream_sid,
                "callSid": self.call.sid,
                "tracks": ["inbound"],
                "customParameters": dict(r.stream_parameters),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": r.stream_sid,
        }

    # ----------------------------------------------------------------- tasks
    async def _supervisor(self) -> None:
        """Wait for the end of the call; unless the server closed, send ``stop`` and close."""
        await self.call.ended.wait()
        if self.end_ms is None:
            self.end_ms = self.now_ms()
        ws = self.ws
        assert ws is not None
        async with self.send_lock:
            self.closing = True
            if self.call.end_reason != "server_closed" and ws.state is State.OPEN:
                stop = {
                    "event": "stop",
                    "sequenceNumber": self.next_seq(),
                    "streamSid": self.result.stream_sid,
                    "stop": {"accountSid": self.call.account_sid, "callSid": self.call.sid},
                }
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(_dumps(stop))
        await ws.close()

    async def _receiver(self) -> None:
        ws = self.ws
        assert ws is not None
        try:
            async for raw in ws:
                await self._on_message(raw)
        except ConnectionClosed:
            pass
        if self.end_ms is None:
            self.end_ms = self.now_ms()
        self.call.request_end("server_closed")

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.error(f"unparseable message from server: {raw[:80]!r}")
            return
        if msg.get("streamSid") != self.result.stream_sid:
            self.error(f"{event} message with streamSid {msg.get('streamSid')!r}")
        now = self.now_ms()
        self._pump(now)
        try:
            if event == "media":
                payload = base64.b64decode(msg["media"]["payload"], validate=True)
                self.result.agent_audio_bytes_received += len(payload)
                self.playback.push_media(payload, now)
                self._note_agent_media(now)
            elif event == "mark":
                self.playback.push_mark(str(msg["mark"]["name"]), now)
                self._pump(now)
            elif event == "clear":
                played = self.playback.played_bytes_total
                for name in self.playback.clear(now):
                    self.echo_queue.append(MarkEcho(name, now, played, on_clear=True))
            else:
                self.error(f"unexpected event from server: {event!r}")
        except (KeyError, TypeError, binascii.Error) as exc:
            self.error(f"malformed {event} message from server: {exc!r}")
        except PlaybackOverflow as exc:
            self.error(f"dropped server {event}: {exc}")
        await self._flush_echoes()

    def _note_agent_media(self, now: float) -> None:
        utts = self.result.utterances
        if utts:
            last = utts[-1]
            if last.end_ms is not None and last.first_agent_media_ms is None:
                last.first_agent_media_ms = now

    def _pump(self, now: float) -> None:
        """Advance playback to ``now`` and queue echoes of the marks it reached."""
        step = self.playback.advance(now)
        played = self.playback.played_bytes_total
        for name in step.marks:
            self.echo_queue.append(MarkEcho(name, now, played, on_clear=False))

    async def _flush_echoes(self) -> None:
        if not self.echo_queue:
            return
        async with self.send_lock:
            await self._send_echoes_locked()

    async def _send_echoes_locked(self) -> None:
        ws = self.ws
        assert ws is not None
        while self.echo_queue and not self.closing:
            echo = self.echo_queue.popleft()
            await ws.send(
                _dumps(
                    {
                        "event": "mark",
                        "sequenceNumber": self.next_seq(),
                        "streamSid": self.result.stream_sid,
                        "mark": {"name": echo.name},
                    }
                )
            )
            self.result.marks_sent_back.append(echo.name)
            self.result.mark_echoes.append(echo)

    async def _sender(self) -> None:
        """Tick every frame interval on absolute deadlines: playback, echoes, DTMF, caller audio."""
        interval_s = self.script.frame_interval_ms / 1000.0
        max_ms = self.script.max_duration_s * 1000.0
        tick = 0
        try:
            while not self.call.ended.is_set():
                deadline = self.t0 + tick * interval_s
                delay = deadline - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lag_ms = -delay * 1000.0
                    self.result.max_send_lag_ms = max(self.result.max_send_lag_ms, lag_ms)
                if self.call.ended.is_set():
                    break
                now = self.now_ms()
                if now >= max_ms:
                    self.end_ms = max_ms
                    self.call.request_end("timeout")
                    break
                await self._tick(now, timestamp_ms=tick * FRAME_MS)
                tick += 1
        except ConnectionClosed:
            self.call.request_end("server_closed")

    async def _tick(self, now: float, timestamp_ms: float) -> None:
        self._pump(now)
        frames = self._caller_frames(now)
        async with self.send_lock:
            if self.closing:
                return
            await self._send_echoes_locked()
            await self._send_due_extras(now)
            for i, frame in enumerate(frames):
                await self._send_media(frame, timestamp_ms + i * FRAME_MS)
            if self.current is not None and not self.current and self.current_record:
                self._finish_utterance(self.now_ms())

    async def _send_due_extras(self, now: float) -> None:
        ws = self.ws
        assert ws is not None
        while self.dtmf and self.dtmf[0][0] <= now:
            _, digit = self.dtmf.pop(0)
            msg = {
                "event": "dtmf",
                "streamSid": self.result.stream_sid,
                "sequenceNumber": self.next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
            await ws.send(_dumps(msg))
            self.result.dtmf_sent.append(digit)
        while self.raw and self.raw[0][0] <= now:
            _, raw = self.raw.pop(0)
            await ws.send(raw)

    async def _send_media(self, frame: bytes, timestamp_ms: float) -> None:
        ws = self.ws
        assert ws is not None
        self.chunk += 1
        msg = {
            "event": "media",
            "sequenceNumber": self.next_seq(),
            "media": {
                "track": "inbound",
                "chunk": str(self.chunk),
                "timestamp": str(int(timestamp_ms)),
                "payload": base64.b64encode(frame).decode("ascii"),
            },
            "streamSid": self.result.stream_sid,
        }
        await ws.send(_dumps(msg))
        self.result.frames_sent += 1

    # ------------------------------------------------------------ turn taking
    def _caller_frames(self, now: float) -> list[bytes]:
        """The frames to send at this tick (one with real-time pacing)."""
        pace = self.script.realtime_pace
        if self.current is None and self.next_utterance < len(self.utterance_frames):
            if self._may_start(now):
                self.current = list(self.utterance_frames[self.next_utterance])
                self.current_record = UtteranceRecord(index=self.next_utterance, start_ms=now)
                self.result.utterances.append(self.current_record)
                self.next_utterance += 1
        elif self.current is None and self._may_hang_up(now):
            self.end_ms = now
            self.call.request_end("caller_hangup")
            return []
        if self.current is not None:
            assert self.current_record is not None
            if pace:
                frames = [self.current.pop(0)] if self.current else []
            else:
                frames, self.current = self.current, []
            self.current_record.frames += len(frames)
            return frames
        return [ULAW_SILENCE * FRAME_BYTES] if pace else []

    def _finish_utterance(self, now: float) -> None:
        assert self.current_record is not None
        self.current_record.end_ms = now
        self.current = None
        self.current_record = None
        self.wait_since = now
        self.agent_spoke_at = None

    def _agent_state(self, now: float) -> tuple[bool, float | None]:
        """(agent has spoken since the caller started waiting, ms of silence since)."""
        pb = self.playback
        if pb.is_playing:
            if self.agent_spoke_at is None:
                self.agent_spoke_at = max(pb.burst_start_ms or now, self.wait_since)
            return True, None
        end = pb.last_audio_end_ms
        if end is not None and end > self.wait_since:
            if self.agent_spoke_at is None:
                self.agent_spoke_at = max(pb.burst_start_ms or end, self.wait_since)
            return True, now - end
        return False, None

    def _may_start(self, now: float) -> bool:
        spoke, silent_for = self._agent_state(now)
        if not spoke:
            return now - self.wait_since >= self.script.first_wait_ms
        if silent_for is not None:
            return silent_for >= self.script.gap_ms
        barge = self.script.barge_in_for(self.next_utterance)
        return (
            barge is not None
            and self.agent_spoke_at is not None
            and now - self.agent_spoke_at >= barge
        )

    def _may_hang_up(self, now: float) -> bool:
        after = self.script.hangup_after_ms
        if after is None or self.next_utterance < len(self.utterance_frames):
            return False
        spoke, silent_for = self._agent_state(now)
        if not spoke:
            return now - self.wait_since >= max(after, self.script.first_wait_ms)
        return silent_for is not None and silent_for >= after

    # ------------------------------------------------------------- callbacks
    async def _stream_status(self, event: str) -> None:
        """POST a ``<Stream statusCallback>`` event (``stream-started`` / ``stream-stopped``)."""
        if not self.status_callback:
            return
        params = stream_status_params(self.call, self.result.stream_sid, event)
        try:
            await self.webhooks.post(self.http, self.status_callback, params)
        except httpx.HTTPError as exc:
            self.error(f"stream status callback failed: {exc!r}")
