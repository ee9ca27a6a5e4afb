"""Runs one call: the pump between the carrier socket, the call session and the Realtime
socket, with tools, timers and storage.

Data flows one way: the carrier codec decodes a Twilio message, the ``CallSession``
decides (it owns every bit of call state), and this module only moves bytes and performs
the session's actions on the two legs and the store.

All of a call's coroutines live in one ``asyncio.TaskGroup`` (carrier reader, the Realtime
leg's connects and watchdog, tool runs, timers, call actions); the first to fail cancels
its siblings. A clean end raises ``CallCompleted``, an abnormal one ``CallAborted``: the
stored ``end_reason`` and the ``switchboard_calls_total{outcome}`` metric tell them apart.

The Realtime leg is replaceable: the session asks for a socket (``ConnectRealtime``), the
bridge opens one and reports ``on_realtime_open`` or ``on_realtime_connect_failed``; a
watchdog pings it every ``realtime.ping_interval_ms`` and reports ``on_realtime_lost``
when it closes, errors or stays silent for ``realtime.liveness_ms``. Reconnect back-off,
replay of the conversation, rollover and the fallback are the session's decisions
(README "Reliability").

Hot path (``app.call.links``, on picows): both sockets deliver messages to synchronous
handlers here, straight from the WebSocket parser, and the handlers write straight to the
other socket. An inbound ``media`` message is decoded and its base64 payload put into an
``input_audio_buffer.append`` untouched (no transcoding, no re-encoding); an assistant
audio chunk becomes a ``media`` and a ``mark`` message written together. No task switch,
queue or action list per frame. So ``clear`` never waits behind queued audio: there is no
audio queue in this process, only Twilio's, which ``clear`` empties.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.websockets import WebSocket

from app import metrics
from app.call import actions as act
from app.call import handoff, keypad
from app.call.deps import CallDeps
from app.call.limits import session_limits
from app.call.links import (
    REALTIME_CONNECT_ERRORS,
    AsgiCarrierLink,
    CarrierLink,
    RealtimeConnection,
    open_realtime,
)
from app.call.listener import SpokenInput
from app.call.recording import CallRecording, carrier_records
from app.call.session import CallSession, LegState
from app.carrier import twilio as tw
from app.carrier.transfers import PolicedControl
from app.errors import (
    CallAborted,
    CallCompleted,
    CarrierCodecError,
    CarrierDisconnected,
    CarrierRestError,
    LinkClosed,
    LinkStalled,
    RealtimeClosed,
    RealtimeCodecError,
    RealtimeUnavailable,
    StoreError,
    StreamRejected,
)
from app.events import call_event
from app.logs import bind_call
from app.phone import mask
from app.realtime import codec as rtc
from app.realtime import events as ev
from app.realtime.dialect import Endpoint, endpoint
from app.store.backends import now_ms
from app.store.objects import recording_key
from app.store.tokens import StreamContext
from app.store.writer import StoreWriter
from flows.variables import fill_flow
from tools.base import CallInfo, ToolContext

log = logging.getLogger(__name__)

#: WebSocket close code for a policy violation (RFC 6455 §7.4.1): bad or replayed token.
POLICY_VIOLATION = 1008


class CallBridge:
    """Bridges one accepted Media Streams WebSocket to a Realtime session (``LiveCall``).

    ``carrier``: the media-plane listener's socket (``MediaStreamLink``), or an ASGI
    ``WebSocket`` (the HTTP app's fallback route)."""

    def __init__(self, deps: CallDeps, carrier: CarrierLink | WebSocket) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.call_sid = ""
        self.stream_sid = ""
        self.session: CallSession | None = None
        #: Both tracks, when the flow records the call (``app.call.recording``).
        self.recording: CallRecording | None = None
        self._remote_recording = False  # Twilio records this call (recording_source)
        self.rt: RealtimeConnection | None = None
        self.listener: SpokenInput | None = None  # a spoken-input capture's session
        self.carrier: CarrierLink = (
            carrier
            if isinstance(carrier, CarrierLink)
            else AsgiCarrierLink(carrier, self.settings.carrier_send_queue_max)
        )
        self.writer: StoreWriter | None = None
        self.endpoint: Endpoint = endpoint(self.settings)
        self.info: CallInfo | None = None
        self._tools: list[dict[str, Any]] = []
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[Any] | None = None
        #: Set (once) by a synchronous handler that must end the call: the exception the
        #: task group raises.
        self._ending: asyncio.Future[BaseException] | None = None
        self._rt_heard = False  # a Realtime message arrived since the watchdog last looked
        self.frames_in = 0
        self.frames_out = 0
        self.malformed = 0
        self.direction = "inbound"
        self.ended_reason = ""
        self.context: StreamContext | None = None
        self._t0_wall = 0  # epoch ms the call's first stream started
        self._handed_off = False  # left for a warm transfer: the record stays open

    # --- entry point ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the socket until the call ends. Never raises for call-level failures."""
        self._main = asyncio.current_task()
        try:
            start = await self._await_start()
            context = await self._authorize(start)
        except StreamRejected as exc:
            metrics.STREAM_REJECTED.labels(exc.reason).inc()
            log.warning("media stream rejected: %s", exc.reason)
            await self._close_carrier(POLICY_VIOLATION, exc.reason)
            return
        self.call_sid, self.stream_sid = start.call_sid, start.stream_sid
        bind_call(self.call_sid)
        # Everything about the call comes from what the webhook stored with the token;
        # the rest of start.customParameters is ignored.
        deps = self.deps
        flow = deps.flows.get(context.flow) or deps.flows.default
        self.direction = context.direction
        variables = dict(context.variables)  # a campaign contact's
        flow = fill_flow(flow, variables)  # {{name}} placeholders; missing ones become ""
        self.context = context
        self.session = CallSession(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            flow=flow,
            beta=self.endpoint.beta,
            now_ms=lambda: time.monotonic() * 1000,
            limits=session_limits(self.settings, self.endpoint.beta),
            caller=context.from_number,
        )
        self._t0_wall = await handoff.resume(self.deps, self.session, context)
        self.writer = StoreWriter.for_call(deps.store, self.call_sid, self.settings)
        self.info = info = CallInfo(
            call_sid=self.call_sid,
            direction=self.direction,
            from_number=context.from_number,
            to_number=context.to_number,
            flow=flow.name,
            transfer_targets=dict(flow.transfer_targets),
            variables=variables,
        )
        control = PolicedControl(self.session, deps.transfers, flow.transfer_targets)
        self.tool_ctx = ToolContext(info, control, deps.backends)
        self._tools = deps.registry.definitions(flow.tools)
        self._remote_recording = flow.recording.mode == "on" and carrier_records(self.settings)
        record_here = deps.recordings and not context.handoff  # the first stream's
        if flow.recording.mode == "on" and not self._remote_recording and record_here:
            self.recording = CallRecording(self.settings.recording_max_s * 1000)
        deps.live.add(self)
        metrics.ACTIVE_CALLS.inc()
        # The store writer outlives the legs' task group: the call's last writes
        # (end reason, unheard transcript) are made after the legs stopped.
        self._writer_task = asyncio.create_task(self.writer.run(), name=f"{self.call_sid}:store")
        assert self.writer.recorder is not None
        self.writer.submit(self.writer.recorder.update_call(status="in-progress"))
        self.writer.submit(lambda: call_event(deps, "call.started", self.call_sid))
        log.info(
            "call bridged: flow=%s from=%s to=%s",
            flow.name,
            mask(info.from_number),
            mask(info.to_number),
        )
        outcome = "completed"
        try:
            await self._run_legs()
        except* CallCompleted as group:
            self.ended_reason = _first(group).reason
        except* CallAborted as group:
            outcome = "aborted"
            self.ended_reason = _first(group).reason
            log.warning("call aborted: %s", self.ended_reason)
        except* Exception as group:
            outcome = "aborted"
            self.ended_reason = f"internal error: {_first(group)!r}"
            log.exception("call failed", exc_info=_first(group))
        finally:
            await self._finish(outcome)

    async def _finish(self, outcome: str) -> None:
        assert self.session is not None and self.writer is not None
        reason = self.ended_reason or outcome
        try:
            rt, self.rt = self.rt, None
            if rt is not None:
                rt.detach()  # late Realtime events must not touch the finished session
            listener, self.listener = self.listener, None
            if listener is not None:
                await listener.close()
            self._dispatch_final(self.session.end(reason))
            if self.recording is not None:
                await self._save_recording(self.recording)
            writer, rec = self.writer, self.writer.recorder
            assert rec is not None
            ended = now_ms()
            if not self._handed_off:  # else the <Dial action> callback ends the record
                writer.submit(rec.update_call(status="ended", ended_at_ms=ended))
                # After the "ended" write: the analysis and search index see a finished call.
                writer.submit(
                    lambda: call_event(
                        self.deps, "call.ended", self.call_sid, reason=reason, outcome=outcome
                    )
                )
            await writer.close(self.settings.store_flush_timeout_ms / 1000)
            # Bounded: a writer that outlives its cancel must not keep the call listed.
            flush_s = self.settings.store_flush_timeout_ms / 1000
            if not (await asyncio.wait([self._writer_task], timeout=flush_s))[0]:
                log.error("store writer still running after the call ended")
            if writer.dropped:
                metrics.STORE_DROPPED.inc(writer.dropped)
            metrics.FRAMES.labels("in").inc(self.frames_in)
            metrics.FRAMES.labels("out").inc(self.frames_out)
            metrics.ACTIVE_CALLS.dec()
            metrics.CALLS.labels(self.direction, outcome).inc()
            if rt is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.settings.ws_close_timeout_ms / 1000):
                        await rt.close()
            await self._close_carrier(1000, "call ended")
        finally:  # whatever failed above, the call is no longer live here
            self.deps.live.remove(self.call_sid, self)
        log.info("call ended: %s (%s)", reason, outcome)

    async def _start_carrier_recording(self) -> None:
        """Twilio records the call (dual channel); its signed status callback
        (``/twilio/recording-status``) stores where the recording is."""
        assert self.session is not None
        url = self.settings.public_base_url.rstrip("/") + "/twilio/recording-status"
        at = self.session.elapsed_ms()
        try:
            sid = await self.deps.calls_api.start_recording(self.call_sid, url)
        except CarrierRestError as exc:
            log.warning("carrier recording not started: %s", exc)
            failed = act.StoreEvent("recording_failed", {"source": "twilio"}, at)
            self._dispatch_final([act.Store(failed)])
            return
        fields: dict[str, str | int | float] = {"recording_sid": sid, "recording_source": "twilio"}
        started = act.StoreEvent("recording_started", {"source": "twilio", "sid": sid}, at)
        self._dispatch_final([act.Store(act.StoreCallFields(fields)), act.Store(started)])

    async def _save_recording(self, recording: CallRecording) -> None:
        """Write the call's stereo WAV to the recordings store (in a thread) and keep its
        location on the call record; a failure is logged, the call record still closes."""
        store, session = self.deps.recordings, self.session
        assert session is not None
        self.recording = None
        if store is None:
            return
        try:
            key = recording_key(self.call_sid)
            data = await asyncio.to_thread(recording.wav)
            await asyncio.to_thread(store.put, key, data)
        except Exception as exc:
            log.warning("recording not saved: %s", exc)
            return
        ms = max(len(recording.caller), len(recording.agent)) // 8
        fields: dict[str, str | int | float] = {
            "recording": key,
            "recording_bytes": len(data),
            "recording_ms": ms,
        }
        saved = act.StoreEvent(
            "recording_saved", {"bytes": len(data), "ms": ms}, session.elapsed_ms()
        )
        self._dispatch_final([act.Store(act.StoreCallFields(fields)), act.Store(saved)])

    # --- LiveCall: operator control (admin API, any instance via pub/sub), shutdown --------

    def snapshot(self) -> dict[str, str | int]:
        """The call as an operator sees it now (numbers masked)."""
        info, session = self.info, self.session
        out: dict[str, str | int] = {
            "call_sid": self.call_sid,
            "direction": self.direction,
            "flow": session.flow.name if session is not None else "",
            "from_masked": mask(info.from_number) if info is not None else "",
            "to_masked": mask(info.to_number) if info is not None else "",
            "state": session.machine.state.value if session is not None else "",
        }
        if session is not None:
            snap = session.snapshot()
            out.update({k: v for k, v in snap.items() if k not in ("state",)})
        return out

    def hangup(self, reason: str = "operator") -> None:
        """Hang up now through the carrier's REST API (not waiting for audio to finish)."""
        assert self.session is not None
        self._perform_all(self.session.operator_hangup(reason))

    def transfer(self, to_number: str, reason: str = "operator", mode: str | None = None) -> None:
        """Transfer (cold: now, warm: after the hold line). Raises ``ToolRefused``."""
        assert self.session is not None
        self._perform_all(self.session.operator_transfer(to_number, reason, mode))

    def say(self, text: str) -> None:
        """Make the agent say ``text`` now (after the current response, if one is active)."""
        assert self.session is not None
        self._perform_all(self.session.say(text))

    def end_politely(self, line: str, reason: str) -> None:
        """Say ``line`` through the carrier, then hang up (the shutdown deadline)."""
        assert self.session is not None
        self._perform_all(self.session.end_politely(line, reason))

    def _perform_all(self, actions: list[act.Action]) -> None:
        self._spawn(self._dispatch(actions), "operator")

    def abort(self, reason: str) -> None:
        """End the call from outside (shutdown, operator): fails its task group."""

        async def fail() -> None:
            raise CallAborted(reason)

        if self._tg is not None:
            self._spawn(fail(), "abort")
        elif self._main is not None:
            self._main.cancel()

    # --- before bridging ------------------------------------------------------------------

    async def _receive_text(self) -> str | None:
        """Next carrier message as text, or None when the socket closed."""
        data = await self.carrier.receive()
        return None if data is None else data.decode("utf-8", "replace")

    async def _await_start(self) -> tw.Start:
        """Read up to the ``start`` message (``connected`` first), within the start timeout."""
        try:
            async with asyncio.timeout(self.settings.stream_start_timeout_ms / 1000):
                while True:
                    text = await self._receive_text()
                    if text is None:
                        raise StreamRejected("closed before start")
                    if len(text) > self.settings.carrier_max_message_bytes:
                        self._malformed("oversized message before start")
                        continue
                    try:
                        event = tw.decode(text)
                    except CarrierCodecError as exc:
                        self._malformed(str(exc))
                        continue
                    if isinstance(event, tw.Start):
                        return event
                    if isinstance(event, tw.Stop):
                        raise StreamRejected("stopped before start")
        except TimeoutError:
            raise StreamRejected("no start in time") from None

    async def _authorize(self, start: tw.Start) -> StreamContext:
        """Redeem the one-time token of ``start.customParameters``; return the call's
        context the voice webhook stored with it (nothing else of the parameters)."""
        token = start.custom_parameters.get("token", "")
        try:
            context = await self.deps.tokens.redeem(token, start.call_sid)
        except StoreError as exc:
            raise StreamRejected(f"token store unavailable: {exc}") from None
        if context is None:
            raise StreamRejected("bad or replayed stream token")
        return context

    # --- the legs -------------------------------------------------------------------------

    async def _run_legs(self) -> None:
        session = self.session
        assert session is not None
        self._ending = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._dispatch_now(session.take_actions())  # the dead-air timer
            tg.create_task(self._carrier_leg(), name=f"{self.call_sid}:carrier")
            tg.create_task(self._connect(), name=f"{self.call_sid}:realtime-connect")
            tg.create_task(self._deadline(), name=f"{self.call_sid}:deadline")
            tg.create_task(self._watch_ending(), name=f"{self.call_sid}:ending")
            tg.create_task(self._watch_carrier(), name=f"{self.call_sid}:carrier-watch")

    async def _deadline(self) -> None:
        await asyncio.sleep(self.settings.max_call_duration_s)
        raise CallAborted(f"max call duration {self.settings.max_call_duration_s}s reached")

    async def _watch_ending(self) -> None:
        assert self._ending is not None
        raise await self._ending

    def _end(self, exc: BaseException) -> None:
        """End the call from a synchronous handler: the task group raises ``exc``
        (the first reason given wins)."""
        if self._ending is not None and not self._ending.done():
            self._ending.set_result(exc)

    async def _carrier_leg(self) -> None:
        session = self.session
        assert session is not None
        await self.carrier.serve(self._on_carrier_message)
        if session.carrier_stopped:
            await asyncio.Future()  # `stop` already ended the call through `_end`
        if session.action_done:
            raise CallCompleted(session.end_reason("carrier closed"))
        raise CarrierDisconnected("carrier socket closed without stop")

    async def _watch_carrier(self) -> None:
        """A carrier that stops playing (its mark echoes stop coming back) ends the call."""
        session = self.session
        assert session is not None
        every = self.settings.carrier_stall_ms / 4000  # a quarter of the limit
        while True:
            await asyncio.sleep(every)
            overdue = session.carrier_overdue_ms()
            if overdue > self.settings.carrier_stall_ms:
                metrics.CARRIER_STALLS.inc()
                raise CallAborted(f"carrier stalled: no mark echo for {overdue} ms")

    def _on_carrier_message(self, data: bytes) -> None:
        """One message from the carrier (called straight from its socket's parser)."""
        session = self.session
        assert session is not None
        if session.carrier_stopped:
            return
        if len(data) > self.settings.carrier_max_message_bytes:
            self._malformed(f"oversized carrier message ({len(data)} bytes)")
            return
        try:
            event = tw.decode(data)
        except CarrierCodecError as exc:
            self._malformed(str(exc))
            return
        try:
            if type(event) is tw.Media:
                self.frames_in += 1
                if self.recording is not None:
                    # During a keypad capture the caller's track is silence: the tones
                    # of a card number must not reach a recording either.
                    self.recording.inbound(event.payload, muted=session.capture is not None)
                append = session.on_carrier_media(event.payload)
                if append is not None:
                    self._send_realtime(append)
                elif self.listener is not None:
                    self.listener.feed(event.payload)
            elif type(event) is tw.Mark:
                self._dispatch_now(session.on_mark(event.name))
            elif type(event) is tw.Dtmf:
                self._dispatch_now(session.on_dtmf(event.digit))
            elif type(event) is tw.Stop:
                self._end(CallCompleted(session.on_carrier_stop()))
            elif type(event) is tw.Unknown:
                metrics.UNKNOWN_EVENTS.labels("carrier").inc()
                log.info("unknown carrier event %r ignored", event.event)
        except LinkClosed:
            pass  # the carrier is gone: its leg ends the call
        except Exception as exc:
            self._end(self._link_failure(exc))

    # --- the Realtime leg: connect, watch, replace ---------------------------------------

    async def _connect(self) -> None:
        """Open a Realtime socket and hand it to the session (``ConnectRealtime``)."""
        session = self.session
        assert session is not None
        if session.leg is not LegState.down or self.rt is not None:
            return
        try:
            rt = await open_realtime(self.endpoint, self.settings)
        except REALTIME_CONNECT_ERRORS as exc:
            metrics.REALTIME_CONNECT_FAILURES.inc()
            why = f"connect to {self.endpoint.redacted_url()} failed: {exc or type(exc).__name__}"
            await self._dispatch(session.on_realtime_connect_failed(why))
            return
        if session.leg is not LegState.down or self.rt is not None:
            await rt.close()  # the call ended or fell back meanwhile
            return
        self.rt = rt
        self._dispatch_now(session.on_realtime_open(self._tools))
        rt.attach(self._on_realtime_message, self.settings.realtime.send_queue_max)
        self._spawn(self._watch_realtime(rt), "realtime-watch")

    async def _watch_realtime(self, rt: RealtimeConnection) -> None:
        """Ping ``rt``; report it lost when it closes or nothing comes back for
        ``realtime.liveness_ms`` (a frozen peer answers no ping)."""
        interval = self.settings.realtime.ping_interval_ms / 1000
        liveness = self.settings.realtime.liveness_ms / 1000
        loop = asyncio.get_running_loop()
        closed = asyncio.ensure_future(rt.wait_closed())
        heard_at, pongs = loop.time(), rt.pongs
        reason, silent_ms = "", 0
        try:
            while self.rt is rt:
                rt.ping()
                done, _ = await asyncio.wait({closed}, timeout=interval)
                if done:
                    reason = f"socket closed: {rt.close_code} {rt.close_reason}".rstrip()
                    break
                if self._rt_heard or rt.pongs != pongs:
                    self._rt_heard, pongs, heard_at = False, rt.pongs, loop.time()
                elif loop.time() - heard_at > liveness:
                    silent_ms = int((loop.time() - heard_at) * 1000)
                    reason = f"no answer for {int(liveness * 1000)} ms (liveness)"
                    metrics.REALTIME_LIVENESS_TIMEOUTS.inc()
                    break
        finally:
            closed.cancel()
        self._realtime_lost(rt, reason, silent_ms)

    def _realtime_lost(self, rt: RealtimeConnection, reason: str, silent_ms: int = 0) -> None:
        """``rt`` failed (closed, silent, not reading): drop it and tell the session,
        once; a socket already replaced or closed on purpose is ignored."""
        if self.rt is not rt:
            return
        self.rt = None
        rt.abort()
        metrics.REALTIME_DISCONNECTS.inc()
        assert self.session is not None
        lost = self.session.on_realtime_lost(reason or "socket closed", silent_for_ms=silent_ms)
        self._dispatch_now(lost)

    def _send_realtime(self, *texts: str) -> None:
        rt = self.rt
        if rt is None:
            return  # no socket: the session keeps what matters for the next one
        try:
            rt.send_now(*texts)
        except (RealtimeClosed, LinkStalled) as exc:
            self._realtime_lost(rt, str(exc))

    def _on_realtime_message(self, data: bytes) -> None:
        """One Realtime server event (called straight from its socket's parser)."""
        self._rt_heard = True
        try:
            event = rtc.decode(data)
        except RealtimeCodecError as exc:
            metrics.MALFORMED.labels("realtime").inc()
            log.warning("malformed realtime event: %s", exc)
            return
        session = self.session
        assert session is not None
        try:
            if type(event) is ev.ResponseOutputAudioDelta:
                out = session.audio_delta(event)
                if out is not None:
                    self.frames_out += len(out)
                    if self.recording is not None:
                        self.recording.outbound(event.delta, session.elapsed_ms())
                    self.carrier.send(*out)
                return
            self._dispatch_now(session.on_realtime(event))
        except LinkClosed:
            pass  # the carrier is gone: its leg ends the call
        except Exception as exc:
            self._end(self._link_failure(exc))

    def _link_failure(self, exc: Exception) -> BaseException:
        """The call-level exception for a failure inside a synchronous handler."""
        if isinstance(exc, CallCompleted | CallAborted):
            return exc
        if isinstance(exc, LinkClosed):
            return CarrierDisconnected(str(exc))
        if isinstance(exc, LinkStalled):
            return CallAborted(f"carrier stalled: {exc}")
        log.exception("call handler failed", exc_info=exc)
        return exc

    # --- actions ----------------------------------------------------------------------------

    async def _dispatch(self, actions: list[act.Action]) -> None:
        """Perform ``actions`` from a task (timers, tools, operator commands)."""
        try:
            self._dispatch_now(actions)
        except Exception as exc:
            raise self._link_failure(exc) from None

    def _dispatch_now(self, actions: list[act.Action]) -> None:
        """Perform ``actions`` in order, now: socket sends are written synchronously, the
        rest is queued (store), logged or spawned (tools, timers, call actions)."""
        for a in actions:
            t = type(a)
            if t is act.SendCarrier:
                self._send_carrier(a)  # type: ignore[arg-type]
            elif t is act.SendRealtime:
                self._send_realtime(a.text)  # type: ignore[union-attr]
            else:
                self._perform(a)

    def _dispatch_final(self, actions: list[act.Action]) -> None:
        """Perform the actions that need no socket (store writes, logs) at call end."""
        for a in actions:
            if isinstance(a, act.Store | act.Log):
                self._perform(a)

    def _send_carrier(self, a: act.SendCarrier) -> None:
        if a.control and self.recording is not None and self.session is not None:
            self.recording.clear(self.session.elapsed_ms())  # `clear`: unplayed audio gone
        try:
            self.carrier.send(a.text, control=a.control)
        except LinkClosed:
            return  # the call is ending; nothing more reaches the caller
        self.frames_out += 1

    def _perform(self, a: act.Action) -> None:
        assert self.writer is not None
        if isinstance(a, act.Store):
            self.writer.submit(self._store_op(a.op))
        elif isinstance(a, act.Log):
            getattr(log, a.level)(a.message)
            counter = _LOG_COUNTERS.get(a.counter or "")
            if counter is not None:
                counter.inc()
        elif isinstance(a, act.RunTools):
            self._spawn(self._run_tools(a.calls), "tools")
        elif isinstance(a, act.StartTimer):
            self._start_timer(a.name, a.delay_ms)
        elif isinstance(a, act.CancelTimer):
            task = self._timers.pop(a.name, None)
            if task is not None:
                task.cancel()
        elif isinstance(a, act.ConnectRealtime):
            self._spawn(self._connect(), "realtime-connect")
        elif isinstance(a, act.CloseRealtime):
            rt, self.rt = self.rt, None
            if rt is not None:
                rt.detach()
                self._spawn(rt.close(), f"realtime-close:{a.reason}")
        elif isinstance(a, act.Hangup | act.Transfer | act.Fallback):
            self._spawn(self._call_action(a), "call_action")
        elif isinstance(a, act.StartRecording):
            if self._remote_recording:
                self._spawn(self._start_carrier_recording(), "recording")
        elif isinstance(a, act.OpenListener | act.CloseListener):
            self._listen(isinstance(a, act.OpenListener))
        elif isinstance(a, act.SecureDigits):
            sink = self.deps.digit_sink
            self._spawn(keypad.deliver(sink, self.call_sid, a.purpose, a.digits), "digit-sink")

    def _listen(self, on: bool) -> None:
        """Open (``on``) or close the listen-only session of a spoken-input capture."""
        old, self.listener, session = self.listener, None, self.session
        if old is not None:
            self._spawn(old.close(), "listener-close")
        if on and session is not None:
            heard = lambda text: self._dispatch_now(session.on_spoken(text))  # noqa: E731
            self.listener = SpokenInput(self.endpoint, self.settings, session.flow, heard)
            self._spawn(self.listener.run(), "listener")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        assert self._tg is not None
        return self._tg.create_task(coro, name=f"{self.call_sid}:{name}")

    def _start_timer(self, name: str, delay_ms: int) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()

        async def fire() -> None:
            await asyncio.sleep(delay_ms / 1000)
            self._timers.pop(name, None)
            assert self.session is not None
            await self._dispatch(self.session.on_timer(name))

        self._timers[name] = self._spawn(fire(), f"timer:{name}")

    async def _run_tools(self, calls: tuple[act.FunctionCall, ...]) -> None:
        session = self.session
        assert session is not None
        timeouts = session.flow.tool_timeouts_ms
        registry = self.deps.registry
        outcomes = await asyncio.gather(
            *(
                registry.invoke(
                    c.name,
                    c.call_id,
                    c.arguments,
                    self.tool_ctx,
                    timeouts.get(c.name, self.settings.tool_timeout_ms),
                )
                for c in calls
            )
        )
        for o in outcomes:
            metrics.TOOL_CALLS.labels(o.name, o.error or "ok").inc()
            metrics.TOOL_LATENCY.labels(o.name).observe(o.duration_ms / 1000)
            log.info("tool %s -> %s in %.0f ms", o.name, o.error or "ok", o.duration_ms)
        await self._dispatch(session.on_tool_results(list(outcomes)))

    async def _call_action(self, action: act.Hangup | act.Transfer | act.Fallback) -> None:
        api = self.deps.calls_api
        name = type(action).__name__.lower()
        try:
            if isinstance(action, act.Hangup):
                await api.hangup(self.call_sid)
            elif isinstance(action, act.Transfer) and action.mode == "warm":
                await handoff.start(self.deps, self.info, self.context, action, self._t0_wall)
                self._handed_off = True
            elif isinstance(action, act.Transfer):
                await api.transfer(self.call_sid, action.to_number)
                writer, to, why = self.writer, action.to_number, action.reason
                if writer is not None:
                    writer.submit(
                        lambda: call_event(
                            self.deps, "transfer.completed", self.call_sid, to=to, reason=why
                        )
                    )
            else:
                metrics.FALLBACKS.inc()
                await api.say_then(self.call_sid, action.line, action.target or None)
        except CarrierRestError as exc:
            log.error("call action %s failed, closing the stream instead: %s", name, exc)
            end = RealtimeUnavailable if isinstance(action, act.Fallback) else CallCompleted
            raise end(f"{name} (stream closed)") from None
        # The carrier now ends the stream with `stop`; if it does not, close it ourselves.
        await asyncio.sleep(self.settings.call_action_grace_ms / 1000)
        if isinstance(action, act.Fallback):
            raise RealtimeUnavailable(f"fallback: {action.reason}")
        raise CallCompleted(f"{name}: {action.reason}")

    def _store_op(self, op: act.StoreOp) -> Any:
        assert self.writer is not None and self.writer.recorder is not None
        rec = self.writer.recorder  # its ops are safe to retry and replayed after a loss
        if isinstance(op, act.StoreTranscript):
            return rec.append_transcript(
                role=op.role,
                text=op.text,
                item_id=op.item_id,
                offset_ms=op.offset_ms,
                interrupted=op.interrupted,
            )
        if isinstance(op, act.StoreRouting):
            return rec.append_routing(
                flow=op.flow, reason=op.reason, target=op.target, at_ms=now_ms()
            )
        if isinstance(op, act.StoreToolCall):
            return rec.append_tool_call(
                name=op.name,
                call_id=op.call_id,
                arguments=op.arguments,
                result=op.result,
                error=op.error,
                duration_ms=op.duration_ms,
                at_ms=now_ms(),
            )
        if isinstance(op, act.StoreUsage):
            return rec.add_usage(op.usage)
        if isinstance(op, act.StoreEvent):
            return rec.append_event(kind=op.kind, fields=op.fields, at_ms=op.at_ms)
        return rec.update_call(**op.fields)

    # --- misc -------------------------------------------------------------------------------

    def _malformed(self, why: str) -> None:
        self.malformed += 1
        metrics.MALFORMED.labels("carrier").inc()
        log.warning("malformed carrier message: %s", why)

    async def _close_carrier(self, code: int, reason: str) -> None:
        if self.carrier.open:
            with contextlib.suppress(Exception):
                await self.carrier.close(code, reason)


_LOG_COUNTERS = {
    "barge_in": metrics.BARGE_INS,
    "realtime_error": metrics.REALTIME_ERRORS,
    "realtime_reconnected": metrics.REALTIME_RECONNECTS,
}


def _first(group: BaseExceptionGroup[Any]) -> Any:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
