"""Runs one call: carrier socket ↔ call session ↔ Realtime socket, with tools and storage.

Data flows one way: the carrier codec decodes a Twilio message, the ``CallSession``
decides, and this module performs the resulting actions on the two legs and the store.

All of a call's coroutines live in one ``asyncio.TaskGroup`` (carrier reader, Realtime
leg, store writer, tool runs, timers); the first to fail cancels its siblings. A clean
end raises ``CallCompleted``, an abnormal one ``CallAborted``: the stored ``end_reason``
and the ``switchboard_calls_total{outcome}`` metric tell them apart.

Hot path (``app.call.links``, on picows): both sockets deliver messages to synchronous
handlers here, straight from the WebSocket parser, and the handlers write straight to the
other socket. An inbound ``media`` message is decoded and its base64 payload put into an
``input_audio_buffer.append`` untouched (no transcoding, no re-encoding); an assistant
audio chunk becomes a ``media`` and a ``mark`` message written together. No task switch,
queue or action list per frame. So ``clear`` never waits behind queued audio: there is no
audio queue in this process, only Twilio's, which ``clear`` empties. Whatever the
handlers cannot do synchronously (tools, timers, store writes, hang-up) is spawned into
the call's task group, and a handler that must end the call hands the reason to the
group through ``_end``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from starlette.websockets import WebSocket

from app import metrics
from app.call import actions as act
from app.call.links import (
    AsgiCarrierLink,
    CarrierLink,
    LinkClosed,
    LinkStalled,
    RealtimeClosed,
    RealtimeConnectFailed,
    RealtimeConnection,
    connect_realtime,
)
from app.call.session import CallSession
from app.carrier import twilio as tw
from app.carrier.rest import CarrierRestError
from app.carrier.transfers import PolicedControl
from app.deps import Services
from app.dialer.variables import fill_flow
from app.errors import (
    CallAborted,
    CallCompleted,
    CarrierCodecError,
    CarrierDisconnected,
    RealtimeCodecError,
    RealtimeDisconnected,
    StoreError,
)
from app.logs import bind_call
from app.phone import mask
from app.realtime import codec as rtc
from app.realtime import events as ev
from app.realtime.dialect import Endpoint, endpoint
from app.store.tokens import StreamContext
from app.store.writer import StoreWriter
from flows import Flow
from tools.base import CallInfo, ToolContext

log = logging.getLogger(__name__)

#: WebSocket close code for a policy violation (RFC 6455 §7.4.1): bad or replayed token.
POLICY_VIOLATION = 1008


class StreamRejected(Exception):
    """The media stream failed its checks before any audio was bridged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallBridge:
    """Bridges one accepted Media Streams WebSocket to one Realtime session.

    ``carrier``: the media-plane listener's socket (``MediaStreamLink``), or an ASGI
    ``WebSocket`` (the HTTP app's fallback route)."""

    def __init__(self, services: Services, carrier: CarrierLink | WebSocket) -> None:
        self.services = services
        self.settings = services.settings
        self.call_sid = ""
        self.stream_sid = ""
        self.session: CallSession | None = None
        self.rt: RealtimeConnection | None = None
        self.carrier: CarrierLink = (
            carrier
            if isinstance(carrier, CarrierLink)
            else AsgiCarrierLink(carrier, self.settings.carrier_send_queue_max)
        )
        self.writer: StoreWriter | None = None
        self.endpoint: Endpoint = endpoint(self.settings)
        frames = max(1, self.settings.inbound_buffer_ms // 20)
        self._pending_audio: deque[str] = deque(maxlen=frames)
        #: Realtime events produced before the socket exists (early keypad digits, a
        #: response.create): sent right after session.update, never dropped silently.
        self._pending_events: deque[str] = deque()
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[Any] | None = None
        self._abort_reason: str | None = None
        #: Set (once) by a synchronous handler that must end the call: the exception the
        #: task group raises.
        self._ending: asyncio.Future[BaseException] | None = None
        self._stopped = False
        self.frames_in = 0
        self.frames_out = 0
        self.malformed = 0
        self.direction = "inbound"
        self.ended_reason = ""

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
        flow = self.services.flows.get(context.flow) or self.services.flows.default
        self.direction = context.direction
        variables = dict(context.variables)  # a campaign contact's
        flow = fill_flow(flow, variables)  # {{name}} placeholders; missing ones become ""
        self.session = CallSession(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            flow=flow,
            beta=self.endpoint.beta,
            now_ms=lambda: time.monotonic() * 1000,
            call_action_grace_ms=self.settings.call_action_grace_ms,
            playback_stall_tolerance_ms=self.settings.playback_stall_tolerance_ms,
        )
        self.writer = StoreWriter(self.call_sid, max_pending=self.settings.store_queue_max)
        info = CallInfo(
            call_sid=self.call_sid,
            direction=self.direction,
            from_number=context.from_number,
            to_number=context.to_number,
            flow=flow.name,
            transfer_targets=dict(flow.transfer_targets),
            variables=variables,
        )
        control = PolicedControl(self.session, self.services.transfers, flow.transfer_targets)
        self.tool_ctx = ToolContext(info, control, self.services.backends)
        self.services.live.add(self)
        metrics.ACTIVE_CALLS.inc()
        # The store writer outlives the legs' task group: the call's last writes
        # (end reason, unheard transcript) are made after the legs stopped.
        self._writer_task = asyncio.create_task(self.writer.run(), name=f"{self.call_sid}:store")
        log.info(
            "call bridged: flow=%s from=%s to=%s",
            flow.name,
            mask(info.from_number),
            mask(info.to_number),
        )
        outcome = "completed"
        try:
            await self._run_legs(flow)
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
        if self.rt is not None:
            self.rt.detach()  # late Realtime events must not touch the finished session
        self._dispatch_final(self.session.end(reason))
        writer, store, sid = self.writer, self.services.store, self.call_sid
        ended = int(time.time() * 1000)
        writer.submit(lambda: store.update_call(sid, status="ended", ended_at_ms=ended))
        await writer.close(self.settings.store_flush_timeout_ms / 1000)
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer_task
        if writer.dropped:
            metrics.STORE_DROPPED.inc(writer.dropped)
        metrics.FRAMES.labels("in").inc(self.frames_in)
        metrics.FRAMES.labels("out").inc(self.frames_out)
        metrics.ACTIVE_CALLS.dec()
        metrics.CALLS.labels(self.direction, outcome).inc()
        if self.rt is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self.rt.close()
        await self._close_carrier(1000, "call ended")
        self.services.live.remove(self.call_sid)
        log.info("call ended: %s (%s)", reason, outcome)

    # --- operator control (admin API, any instance via pub/sub) ------------------------------

    def operator_hangup(self, reason: str = "operator") -> None:
        """Hang up now through the carrier's REST API (not waiting for audio to finish)."""
        assert self.session is not None
        self._perform_all(self.session.operator_hangup(reason))

    def operator_transfer(self, to_number: str, reason: str = "operator") -> None:
        """Transfer now. Raises ``ToolRefused`` when a transfer was already requested."""
        assert self.session is not None
        self._perform_all(self.session.operator_transfer(to_number, reason))

    def operator_say(self, text: str) -> None:
        """Make the agent say ``text`` now (after the current response, if one is active)."""
        assert self.session is not None
        self._spawn(self._dispatch(self.session.say(text)), "operator_say")

    def _perform_all(self, actions: list[act.Action]) -> None:
        self._spawn(self._dispatch(actions), "operator")

    def abort(self, reason: str) -> None:
        """End the call from outside (shutdown, operator): fails its task group."""
        self._abort_reason = reason

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
            context = await self.services.tokens.redeem(token, start.call_sid)
        except StoreError as exc:
            raise StreamRejected(f"token store unavailable: {exc}") from None
        if context is None:
            raise StreamRejected("bad or replayed stream token")
        return context

    # --- the legs -------------------------------------------------------------------------

    async def _run_legs(self, flow: Flow) -> None:
        assert self.writer is not None
        self._ending = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._carrier_leg(), name=f"{self.call_sid}:carrier")
            tg.create_task(self._realtime_leg(flow), name=f"{self.call_sid}:realtime")
            tg.create_task(self._deadline(), name=f"{self.call_sid}:deadline")
            tg.create_task(self._watch_ending(), name=f"{self.call_sid}:ending")

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
        if self._stopped:
            await asyncio.Future()  # `stop` already ended the call through `_end`
        if session.action_done:
            raise CallCompleted(session.end_reason("carrier closed"))
        raise CarrierDisconnected("carrier socket closed without stop")

    def _on_carrier_message(self, data: bytes) -> None:
        """One message from the carrier (called straight from its socket's parser)."""
        if self._stopped:
            return
        if len(data) > self.settings.carrier_max_message_bytes:
            self._malformed(f"oversized carrier message ({len(data)} bytes)")
            return
        try:
            event = tw.decode(data)
        except CarrierCodecError as exc:
            self._malformed(str(exc))
            return
        session = self.session
        assert session is not None
        try:
            if type(event) is tw.Media:
                self.frames_in += 1
                rt = self.rt
                if rt is not None and session.configured:
                    rt.send_now(rtc.ClientEvents.input_audio_append(event.payload))
                else:
                    self._pending_audio.append(event.payload)
            elif type(event) is tw.Mark:
                self._dispatch_now(session.on_mark(event.name))
            elif type(event) is tw.Dtmf:
                self._dispatch_now(session.on_dtmf(event.digit))
            elif type(event) is tw.Stop:
                self._stopped = True
                self._end(CallCompleted(session.end_reason("carrier stop")))
            elif type(event) is tw.Unknown:
                metrics.UNKNOWN_EVENTS.labels("carrier").inc()
                log.info("unknown carrier event %r ignored", event.event)
        except LinkClosed:
            pass  # the carrier is gone: its leg ends the call
        except Exception as exc:
            self._end(self._link_failure(exc))

    async def _realtime_leg(self, flow: Flow) -> None:
        session = self.session
        assert session is not None
        tools = self.services.registry.definitions(flow.tools)
        try:
            rt = await connect_realtime(
                self.endpoint.url,
                dict(self.endpoint.headers),
                open_timeout_s=self.settings.realtime_connect_timeout_ms / 1000,
                max_message_bytes=2**24,
            )
        except (OSError, TimeoutError, RealtimeConnectFailed) as exc:
            metrics.REALTIME_DISCONNECTS.inc()
            raise RealtimeDisconnected(
                f"realtime connect to {self.endpoint.redacted_url()} failed: {exc}"
            ) from None
        self.rt = rt
        self._dispatch_now(session.start(tools))
        if self._pending_events:
            pending, self._pending_events = self._pending_events, deque()
            rt.send_now(*pending)
        rt.attach(self._on_realtime_message, self.settings.realtime_send_queue_max)
        await rt.wait_closed()
        metrics.REALTIME_DISCONNECTS.inc()
        raise RealtimeDisconnected(
            f"realtime socket closed: {rt.close_code} {rt.close_reason or ''}".rstrip()
        )

    def _on_realtime_message(self, data: bytes) -> None:
        """One Realtime server event (called straight from its socket's parser)."""
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
                    self.carrier.send(*out)
                return
            self._dispatch_now(session.on_realtime(event))
            if type(event) is ev.SessionUpdated and self._pending_audio:
                self._flush_pending_audio()
        except LinkClosed:
            pass  # the carrier is gone: its leg ends the call
        except Exception as exc:
            self._end(self._link_failure(exc))

    def _flush_pending_audio(self) -> None:
        rt = self.rt
        assert rt is not None
        append = rtc.ClientEvents.input_audio_append
        pending, self._pending_audio = self._pending_audio, deque(maxlen=self._pending_audio.maxlen)
        rt.send_now(*(append(p) for p in pending))

    def _link_failure(self, exc: Exception) -> BaseException:
        """The call-level exception for a failure inside a synchronous handler."""
        if isinstance(exc, CallCompleted | CallAborted):
            return exc
        if isinstance(exc, RealtimeClosed):
            return RealtimeDisconnected(str(exc))
        if isinstance(exc, LinkClosed):
            return CarrierDisconnected(str(exc))
        if isinstance(exc, LinkStalled):
            return CallAborted(f"stalled: {exc}")
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
                if self.rt is not None:
                    self.rt.send_now(a.text)  # type: ignore[union-attr]
                elif len(self._pending_events) < self.settings.realtime_send_queue_max:
                    self._pending_events.append(a.text)  # type: ignore[union-attr]
                else:
                    log.error(
                        "realtime leg not open and %d events queued: dropping one",
                        len(self._pending_events),
                    )
            else:
                self._perform(a)

    def _dispatch_final(self, actions: list[act.Action]) -> None:
        """Perform the actions that need no socket (store writes, logs) at call end."""
        for a in actions:
            if isinstance(a, act.Store | act.Log):
                self._perform(a)

    def _send_carrier(self, a: act.SendCarrier) -> None:
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
            if a.counter == "barge_in":
                metrics.BARGE_INS.inc()
            elif a.counter == "realtime_error":
                metrics.REALTIME_ERRORS.inc()
        elif isinstance(a, act.RunTools):
            self._spawn(self._run_tools(a.calls), "tools")
        elif isinstance(a, act.StartTimer):
            self._start_timer(a.name, a.delay_ms)
        elif isinstance(a, act.CancelTimer):
            task = self._timers.pop(a.name, None)
            if task is not None:
                task.cancel()
        elif isinstance(a, act.Hangup | act.Transfer):
            self._spawn(self._call_action(a), "call_action")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
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
        flow = session.flow
        timeouts = flow.tool_timeouts_ms
        registry = self.services.registry
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

    async def _call_action(self, action: act.Hangup | act.Transfer) -> None:
        api = self.services.calls_api
        try:
            if isinstance(action, act.Hangup):
                await api.hangup(self.call_sid)
            else:
                await api.transfer(self.call_sid, action.to_number)
        except CarrierRestError as exc:
            log.error("call action failed, closing the stream instead: %s", exc)
            raise CallCompleted(f"{type(action).__name__.lower()} (stream closed)") from None
        # The carrier now ends the stream with `stop`; if it does not, close it ourselves.
        await asyncio.sleep(self.settings.call_action_grace_ms / 1000)
        raise CallCompleted(f"{type(action).__name__.lower()}: {action.reason}")

    def _store_op(self, op: act.StoreOp) -> Any:
        store, sid = self.services.store, self.call_sid
        if isinstance(op, act.StoreTranscript):
            return lambda: store.append_transcript(
                sid,
                role=op.role,
                text=op.text,
                item_id=op.item_id,
                offset_ms=op.offset_ms,
                interrupted=op.interrupted,
            )
        if isinstance(op, act.StoreRouting):
            return lambda: store.append_routing(
                sid, flow=op.flow, reason=op.reason, target=op.target, at_ms=_wall_ms()
            )
        if isinstance(op, act.StoreToolCall):
            return lambda: store.append_tool_call(
                sid,
                name=op.name,
                call_id=op.call_id,
                arguments=op.arguments,
                result=op.result,
                error=op.error,
                duration_ms=op.duration_ms,
                at_ms=_wall_ms(),
            )
        if isinstance(op, act.StoreUsage):
            return lambda: store.add_usage(sid, op.usage)
        return lambda: store.update_call(sid, **op.fields)

    # --- misc -------------------------------------------------------------------------------

    def _malformed(self, why: str) -> None:
        self.malformed += 1
        metrics.MALFORMED.labels("carrier").inc()
        log.warning("malformed carrier message: %s", why)

    async def _close_carrier(self, code: int, reason: str) -> None:
        if self.carrier.open:
            with contextlib.suppress(Exception):
                await self.carrier.close(code, reason)


def _first(group: BaseExceptionGroup[Any]) -> Any:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _wall_ms() -> int:
    return int(time.time() * 1000)
