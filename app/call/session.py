"""The call session: a sans-I/O state machine that owns every bit of one call's state.

Inputs are decoded carrier and Realtime events, the Realtime leg's life (opened, lost,
failed to connect), mark echoes, timer expiries, tool outcomes and operator commands;
every handler returns the ``Action``s to perform, in order (``app.call.actions``). The
bridge (``app.call.bridge``) only moves bytes and performs actions. Time comes from an
injected ``now_ms`` clock, so tests drive it with a fake clock.

What it owns, each in its own module:

- the call's state (``app.call.state``), the Realtime leg's (``LegState``) and the pending
  hang-up or transfer (``ActionPhase``);
- what the caller heard (``app.call.playback``: marks, playhead, the timeline of items);
- one response at a time (``app.call.responses``);
- the conversation so far, replayed into a new Realtime session after a reconnect or a
  rollover (``app.call.conversation``);
- the caller's audio while no Realtime session takes it (bounded, oldest dropped).

Barge-in (docs/protocols.md §1 "Barge-in over a WebSocket"): on
``input_audio_buffer.speech_started`` the session sends ``clear`` first, then for each
item on the playback timeline that was not all heard: ``conversation.item.truncate`` with
``audio_end_ms`` = what was heard when some of it was (never past the generated audio),
``conversation.item.delete`` when it was queued behind and never began playing. Marks
echoed after a ``clear`` are ignored: Twilio echoes every pending mark on ``clear``.

Faults (README "Reliability"): a Realtime leg that drops is reopened with back-off and
the conversation replayed; one that cannot be had within ``dead_air_max_ms`` — connect
failures, ``session.update`` refused, the reconnect budget spent — gives way to the
flow's fallback (a spoken apology through the carrier, then a transfer or hang-up), so
the caller is never left in silence. Before the service's session cap the session rolls
over to a new Realtime session at a quiet moment.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import orjson

from app.audio import FRAME_MS
from app.call import actions as act
from app.call.capture import COLLECT_DIGITS, KeypadCapturing
from app.call.control import TransferControl
from app.call.conversation import Conversation
from app.call.keypad import KeypadCapture
from app.call.limits import (
    ACTION_TIMER,
    DEAD_AIR_TIMER,
    DTMF_TIMER,
    FILLER_TIMER,
    KEYPAD_TIMER,
    RECONNECT_TIMER,
    RESPONSE_RETRY_MS,
    RESPONSE_RETRY_TIMER,
    ROLLOVER_TIMER,
    SessionLimits,
)
from app.call.playback import MARK_EVERY_MS, Playback, PlaybackItem, cut_text
from app.call.recovery import ActionPhase, LegState, RealtimeRecovery
from app.call.responses import Request, ResponseQueue
from app.call.state import CallState, StateMachine
from app.call.tones import SEND_DTMF, DtmfSending
from app.errors import QueueFull
from app.realtime import events as ev
from app.realtime.codec import ClientEvents, say_exactly
from flows import Flow
from tools.base import ToolOutcome

__all__ = [
    "ACTION_TIMER",
    "DEAD_AIR_TIMER",
    "DTMF_TIMER",
    "FILLER_TIMER",
    "MARK_EVERY_MS",
    "RECONNECT_TIMER",
    "RESPONSE_RETRY_TIMER",
    "ROLLOVER_TIMER",
    "ActionPhase",
    "CallSession",
    "LegState",
    "PlaybackItem",
    "SessionLimits",
    "cut_text",
]

BUSY_CODE = "conversation_already_has_active_response"
#: Tools the session runs itself (never through the registry) when the flow offers them.
_SESSION_TOOLS = frozenset({COLLECT_DIGITS, SEND_DTMF})


class CallSession(RealtimeRecovery, KeypadCapturing, DtmfSending, TransferControl):
    """One call's logic. Not thread-safe; driven by one bridge.

    Also implements ``tools.base.CallControl`` for the tools it runs.
    """

    def __init__(
        self,
        *,
        call_sid: str,
        stream_sid: str,
        flow: Flow,
        beta: bool,
        now_ms: Callable[[], float],
        limits: SessionLimits | None = None,
        caller: str = "",
        **overrides: Any,
    ) -> None:
        """``overrides``: single ``SessionLimits`` fields (e.g. ``call_action_grace_ms``);
        ``caller``: the caller's number (E.164 or ""), for a warm transfer's briefing."""
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.flow = flow
        self.caller = caller
        self.client = ClientEvents(beta=beta)
        self.now_ms = now_ms
        self.limits = replace(limits or SessionLimits(), **overrides)
        self.t0 = now_ms()
        #: ms of the call before this stream (a caller back from a warm transfer): added
        #: to every offset, so the transcript keeps one timeline.
        self.offset_base_ms = 0
        #: Said first instead of the greeting when the caller is back from a warm transfer.
        self.resume_line: str | None = None
        self.machine = StateMachine()
        self.leg = LegState.down
        self.phase = ActionPhase.none
        self.pending_action: act.Hangup | act.Transfer | None = None

        self.playback = Playback(stream_sid, self.t0)
        self.responses = ResponseQueue(self.limits.max_pending_responses)
        self.conversation = Conversation(self.limits.conversation_max_entries)
        self.cancelled_responses: set[str] = set()
        self.tools: list[dict[str, Any]] = []
        self.speech_start_ms: dict[str, int] = {}
        self.caller_speaking: str | None = None  # item id of the turn being spoken
        self.last_speech_stop_t: float | None = None
        self.turn_latencies_ms: list[int] = []
        self.tools_running = 0
        self.dtmf_digits: list[str] = []
        self.capture: KeypadCapture | None = None  # collect_digits running
        self._capture_arguments = ""
        self._capture_started = 0
        self.tones_pending: tuple[str, str, str, int] | None = None  # send_dtmf playing
        self._tones_call = act.FunctionCall("", SEND_DTMF, "")
        self.inbound: deque[str] = deque(maxlen=max(1, self.limits.inbound_buffer_frames))
        #: Caller frames dropped from the full buffer while no session took them.
        self.inbound_dropped = 0

        # The Realtime leg's history: opens, drops, the reconnect in progress.
        self.opens = 0
        self.lost_at: float | None = None
        self.lost_reason = ""
        self.reconnect_attempts = 0
        self.reconnects = 0
        self.reconnect_ms: list[int] = []
        self.rollovers = 0
        self._resume = False  # ask the new session to go on once it is ready
        self._rollover_due_at: float | None = None
        self._session_update_id: str | None = None
        self.fallback_reason = ""

        self.carrier_stopped = False  # Twilio sent `stop`: nothing more comes from it
        self._out: list[act.Action] = []
        self._filler_index = 0
        self.counters = _Counters()
        # No Realtime session yet: the caller hears nothing until one is ready.
        self._out.append(act.StartTimer(DEAD_AIR_TIMER, self.limits.dead_air_max_ms))

    # --- read-only views ---------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """A Realtime session takes the caller's audio now."""
        return self.leg is LegState.ready

    @property
    def action_done(self) -> bool:
        """The hang-up or transfer was issued."""
        return self.phase is ActionPhase.executing

    @property
    def items(self) -> dict[str, PlaybackItem]:
        return self.playback.items

    @property
    def playing(self) -> PlaybackItem | None:
        return self.playback.playing

    @property
    def marks(self) -> dict[str, tuple[PlaybackItem, float]]:
        return self.playback.marks

    @property
    def response_id(self) -> str | None:
        return self.responses.active

    def snapshot(self) -> dict[str, Any]:
        """What an operator sees of the call now (no transcript text)."""
        return {
            "state": str(self.machine.state),
            "realtime": str(self.leg),
            "action": str(self.phase),
            "elapsed_ms": self.elapsed_ms(),
            "barge_ins": self.counters.barge_ins,
            "reconnects": self.reconnects,
            "rollovers": self.rollovers,
            "tools_running": self.tools_running,
            "inbound_dropped": self.inbound_dropped,
            "keypad": str(self.capture.state) if self.capture else "",
        }

    # --- helpers -----------------------------------------------------------------------

    def elapsed_ms(self) -> int:
        """ms since the call's first stream started (the offset used in the transcript)."""
        return int(self.now_ms() - self.t0) + self.offset_base_ms

    def _flush(self) -> list[act.Action]:
        out, self._out = self._out, []
        return out

    def take_actions(self) -> list[act.Action]:
        """Actions produced outside a handler (the initial dead-air timer)."""
        return self._flush()

    @property
    def _socket_open(self) -> bool:
        return self.leg is LegState.configuring or self.leg is LegState.ready

    def _realtime(self, text: str) -> None:
        """Send a client event, when a socket takes it. Conversation content produced while
        the leg is down is in ``conversation`` and reaches the next session by replay."""
        if self._socket_open:
            self._out.append(act.SendRealtime(text))

    def _store(self, op: act.StoreOp) -> None:
        self._out.append(act.Store(op))

    def _log(self, level: str, message: str, counter: str | None = None) -> None:
        self._out.append(act.Log(level, message, counter))

    def _event(self, kind: str, **fields: str | int) -> None:
        self._store(act.StoreEvent(kind, fields, self.elapsed_ms()))

    # --- responses: one at a time ---------------------------------------------------------

    def _response_create(self, instructions: str | None = None, kind: str = "turn") -> None:
        """Ask for a response: sent now when none is active and the leg is ready, else
        queued (``app.call.responses``)."""
        req = Request(instructions, kind)
        if self.leg is not LegState.ready:
            if len(self.responses.pending) < self.responses.max_pending:
                self.responses.pending.append(req)
            else:
                self._log("warning", "too many queued responses; dropping one", "response_dropped")
            return
        try:
            now = self.responses.request(req)
        except QueueFull:
            self._log("warning", "too many queued responses; dropping one", "response_dropped")
            return
        if now is not None:
            self._send_response(now)

    def _send_response(self, req: Request) -> None:
        self._out.append(act.SendRealtime(self.client.response_create(req.instructions)))

    def _next_response(self) -> None:
        if self.leg is LegState.ready:
            req = self.responses.next()
            if req is not None:
                self._send_response(req)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, tools: list[dict[str, Any]]) -> list[act.Action]:
        """Token checked, first Realtime socket open: configure it (``session.update``)."""
        return self.on_realtime_open(tools)

    def end_reason(self, default: str) -> str:
        """Why the call ended, naming the hang-up/transfer that caused the carrier's stop."""
        if self.phase is ActionPhase.executing and self.pending_action is not None:
            return f"{type(self.pending_action).__name__.lower()}: {self.pending_action.reason}"
        if self.phase is ActionPhase.executing and self.leg is LegState.failed:
            return f"fallback: {self.fallback_reason}"
        return default

    def end(self, reason: str) -> list[act.Action]:
        """The call is over: record what is still unrecorded (heard estimates) and stop."""
        if self.machine.state is CallState.ended:
            return []
        now = self.now_ms()
        for item in self.playback.items.values():
            self._record_assistant(item, now, final=True)
        if self.dtmf_digits:
            self._record_dtmf()
        self._cancel_capture("call ended")
        self.machine.to(CallState.ended)
        fields: dict[str, str | int | float] = {
            "end_reason": reason,
            "turn_latencies_ms": orjson.dumps(self.turn_latencies_ms).decode(),
            "barge_ins": self.counters.barge_ins,
        }
        if self.reconnects or self.counters.realtime_lost:
            fields["realtime_reconnects"] = self.reconnects
            fields["reconnect_ms"] = orjson.dumps(self.reconnect_ms).decode()
        if self.rollovers:
            fields["realtime_rollovers"] = self.rollovers
        self._store(act.StoreCallFields(fields))
        return self._flush()

    # --- carrier inputs -----------------------------------------------------------------

    def on_carrier_media(self, payload_b64: str) -> str | None:
        """The caller's 20 ms of μ-law (base64, relayed untouched): the
        ``input_audio_buffer.append`` to send now, or None while no Realtime session takes
        it (kept, bounded: the oldest frames go first). The per-frame hot path."""
        if self.leg is LegState.ready:
            if self.capture is None:
                return ClientEvents.input_audio_append(payload_b64)
            return None  # secure keypad capture: the model hears none of it
        if len(self.inbound) == self.inbound.maxlen:
            self.inbound_dropped += 1
        self.inbound.append(payload_b64)
        return None

    def on_carrier_stop(self) -> str:
        """Twilio's ``stop``: the stream is over; returns why the call ended."""
        self.carrier_stopped = True
        return self.end_reason("carrier stop")

    def carrier_overdue_ms(self) -> int:
        """How long the most overdue mark echo is late (ms): the audio before it should
        have played by then. Large when the carrier stopped reading or playing."""
        return self.playback.overdue_ms(self.now_ms())

    def on_mark(self, name: str) -> list[act.Action]:
        """A ``mark`` echo: the audio sent before it has played."""
        if self.tones_pending is not None and self._tones_played(name):
            return self._flush()
        now = self.now_ms()
        item = self.playback.on_echo(name, now, self.limits.playback_stall_tolerance_ms)
        if item is None:
            self.counters.marks_ignored += 1
            return []
        if item.fully_played():
            self._record_assistant(item, now)
        self._check_action()
        return self._flush()

    def on_dtmf(self, digit: str) -> list[act.Action]:
        """A keypad digit: collected, then sent as one user text item after a pause or ``#``;
        while ``collect_digits`` runs, to the capture only (``app.call.capture``)."""
        if self.capture is not None:
            self._capture_digit(digit)
            return self._flush()
        self.dtmf_digits.append(digit)
        if digit == "#":
            return self.on_timer(DTMF_TIMER)
        self._out.append(act.StartTimer(DTMF_TIMER, self.limits.dtmf_gap_ms))
        return self._flush()

    def on_spoken(self, text: str) -> list[act.Action]:
        """A transcript of the listen-only session (``app.call.listener``, open while a
        spoken-input ``collect_digits`` runs): to the capture only, never stored or logged."""
        self._capture_spoken(text)
        return self._flush()

    def _record_dtmf(self) -> str:
        digits = "".join(self.dtmf_digits).rstrip("#")
        self.dtmf_digits.clear()
        self._store(act.StoreTranscript("user", f"[keypad] {digits}", "", self.elapsed_ms(), False))
        return digits

    # --- Realtime inputs ----------------------------------------------------------------

    def on_realtime(self, event: ev.RealtimeEvent) -> list[act.Action]:
        handler = self._HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        return self._flush()

    def on_audio_delta(self, event: ev.ResponseOutputAudioDelta) -> list[act.Action]:
        """Forward one chunk of assistant audio to the carrier, followed by a mark.

        Returns ``[media]`` or ``[media, mark]`` carrier sends, or nothing for a cancelled
        response.
        """
        return [act.SendCarrier(text) for text in self.audio_delta(event) or ()]

    def audio_delta(self, event: ev.ResponseOutputAudioDelta) -> tuple[str, ...] | None:
        """The hot path of ``on_audio_delta``: the ``media`` message to send to the carrier,
        then a ``mark`` when one is due, or None for a cancelled response. No action
        objects: this runs for every chunk of assistant audio."""
        playback = self.playback
        item = playback.items.get(event.item_id)
        if item is None:
            item = playback.item(event.item_id, event.response_id)
        item.generated_bytes += event.size
        if item.interrupted or event.response_id in self.cancelled_responses:
            return None
        now = self.now_ms()
        if item.sent_bytes == 0:
            self._start_playing(item, now)
        return playback.send(item, event.delta, event.size, now)

    def _start_playing(self, item: PlaybackItem, now: float) -> None:
        self.playback.start(item, now)
        if self.last_speech_stop_t is not None:
            self.turn_latencies_ms.append(int(now - self.last_speech_stop_t))
            self.last_speech_stop_t = None

    def _mark_tail(self, item: PlaybackItem) -> None:
        tail = self.playback.mark_tail(item)
        if tail is not None:
            self._out.append(act.SendCarrier(tail))

    def unplayed_ms(self) -> int:
        """Estimated ms of sent audio the carrier has not played yet (items play in order)."""
        return self.playback.unplayed_ms(self.now_ms())

    def _on_session_updated(self, _: ev.SessionUpdated) -> None:
        if self.leg is not LegState.configuring:
            return
        self._leg_to(LegState.ready)
        self._out.append(act.CancelTimer(DEAD_AIR_TIMER))
        if self.limits.rollover_after_ms > 0:
            self._rollover_due_at = None
            self._out.append(act.StartTimer(ROLLOVER_TIMER, self.limits.rollover_after_ms))
        first = self.machine.state is CallState.connecting
        if first:
            self.machine.to(CallState.active)
        if self.inbound:
            append = ClientEvents.input_audio_append
            frames, self.inbound = self.inbound, deque(maxlen=self.inbound.maxlen)
            self._out.extend(act.SendRealtime(append(p)) for p in frames)
        if first and self.resume_line is not None:
            self._response_create(say_exactly(self.resume_line), "resume")
            self._next_response()
            return
        if first:
            if self.flow.recording.mode == "on":
                self._response_create(say_exactly(self.flow.recording.consent_line), "consent")
                self._out.append(act.StartRecording())
            if self.flow.greeting:
                self._response_create(say_exactly(self.flow.greeting), "greeting")
            self._next_response()
            return
        self._resumed()

    def _on_error(self, event: ev.Error) -> None:
        self.counters.realtime_errors += 1
        self._log(
            "warning",
            f"realtime error {event.type}/{event.code}: {event.message} (event {event.event_id})",
            counter="realtime_error",
        )
        if (
            self.leg is LegState.configuring
            and self.opens == 1
            and event.event_id in (None, self._session_update_id)
        ):
            # session.update refused before session.updated: nothing will ever be said.
            self._fallback(f"session.update refused: {event.code or event.message}")
            return
        if event.code == "session_expired":
            self._out.append(act.CloseRealtime("session_expired"))
            self._lost("session_expired", planned=False)
            return
        if self.responses.active == "" and self.responses.inflight is not None:
            busy = event.code == BUSY_CODE
            req = self.responses.on_refused(busy)
            if busy:
                self._out.append(act.StartTimer(RESPONSE_RETRY_TIMER, RESPONSE_RETRY_MS))
            elif req is not None:
                self._send_response(req)

    def _on_speech_started(self, event: ev.InputAudioBufferSpeechStarted) -> None:
        self.speech_start_ms[event.item_id] = event.audio_start_ms
        self.caller_speaking = event.item_id
        if not self.flow.vad.interrupt_response:
            return
        now = self.now_ms()
        active = self.responses.active
        if active is not None:
            # server_vad cancels the response server-side; drop its in-flight audio.
            self.cancelled_responses.add(active)
        playing = [
            i
            for i in self.playback.timeline
            if not i.interrupted
            and (
                i.heard_ms(now) < i.sent_ms
                or (not i.audio_done and i.response_id == active and active)
            )
        ]
        if not playing:
            return  # everything sent has played and nothing more is coming: no barge-in
        self.counters.barge_ins += 1
        self._out.append(act.SendCarrier(self.playback.clear(), control=True))
        parts = []
        for item in playing:
            heard_ms = int(min(item.heard_ms(now), item.sent_ms))
            item.interrupted = True
            item.heard_final_ms = heard_ms
            if heard_ms > 0:
                self.counters.truncates += 1
                self._realtime(self.client.truncate(item.item_id, heard_ms))
                parts.append(f"{item.item_id} heard {heard_ms} ms")
            elif not item.started_by(now):
                # Queued behind the one playing: never heard, so gone from the context.
                self.counters.deletes += 1
                item.recorded = True
                self._realtime(self.client.item_delete(item.item_id))
                parts.append(f"{item.item_id} deleted")
            else:
                parts.append(f"{item.item_id} heard 0 ms")
            self._record_assistant(item, now)
        self._log("info", f"barge-in: {', '.join(parts)}", "barge_in")

    def _on_speech_stopped(self, event: ev.InputAudioBufferSpeechStopped) -> None:
        # `audio_end_ms` is on the input-audio timeline, which starts with the stream (the
        # bridge buffers from `start`), so it maps onto this session's clock from t0.
        self.caller_speaking = None
        self.last_speech_stop_t = min(self.now_ms(), self.t0 + event.audio_end_ms)

    def _on_transcription(self, event: ev.ConversationItemInputAudioTranscriptionCompleted) -> None:
        offset = self.speech_start_ms.pop(event.item_id, self.elapsed_ms())
        text = event.transcript.strip()
        if text:
            self.conversation.user(text)
            self._store(act.StoreTranscript("user", text, event.item_id, offset, False))

    def _on_response_created(self, event: ev.ResponseCreated) -> None:
        ours = self.responses.inflight
        self.responses.on_created(event.response_id)
        self._out.append(act.CancelTimer(RESPONSE_RETRY_TIMER))
        self.counters.responses += 1
        if self.phase is ActionPhase.awaiting_response and (ours is None or ours.kind == "tool"):
            self.phase = ActionPhase.speaking
            # The goodbye/transfer line is starting: the grace period now covers its
            # playback, not the time it took to produce it.
            self._out.append(act.StartTimer(ACTION_TIMER, self.limits.call_action_grace_ms))

    def _on_output_item_added(self, event: ev.ResponseOutputItemAdded) -> None:
        item = event.item
        item_id = item.get("id")
        if (
            item.get("type") == "message"
            and isinstance(item_id, str)
            and item_id not in self.playback.items
        ):
            self.playback.item(item_id, event.response_id)

    def _on_audio_done(self, event: ev.ResponseOutputAudioDone) -> None:
        item = self.playback.items.get(event.item_id)
        if item is not None:
            item.audio_done = True
            self._mark_tail(item)

    def _on_transcript_done(self, event: ev.ResponseOutputAudioTranscriptDone) -> None:
        item = self.playback.item(event.item_id, event.response_id)
        item.transcript = event.transcript
        self._record_assistant(item, self.now_ms())

    def _on_response_done(self, event: ev.ResponseDone) -> None:
        if event.usage:
            self._store(act.StoreUsage(event.usage))
        cancelled = event.response_id in self.cancelled_responses
        self.cancelled_responses.discard(event.response_id)
        for out in event.output:
            if out.get("type") == "message" and isinstance(out.get("id"), str):
                item = self.playback.items.get(out["id"])
                if item is not None:
                    item.audio_done = True
                    self._mark_tail(item)
        if event.status == "failed":
            self._log("warning", f"response {event.response_id} failed", "response_failed")
        calls = tuple(
            act.FunctionCall(
                call_id=str(o.get("call_id", "")),
                name=str(o.get("name", "")),
                arguments=str(o.get("arguments", "")),
            )
            for o in event.output
            if o.get("type") == "function_call"
        )
        next_req = self.responses.on_done(event.response_id)
        if calls and not cancelled and event.status in ("completed", "incomplete"):
            for c in calls:
                self.conversation.function_call(c.call_id, c.name, c.arguments)
            ours = [c for c in calls if c.name in _SESSION_TOOLS and c.name in self.flow.tools]
            for c in ours:
                if c.name == COLLECT_DIGITS:
                    self._start_capture(c)
                else:
                    self._send_tones(c)
            calls = tuple(c for c in calls if c not in ours)
        if calls and not cancelled and event.status in ("completed", "incomplete"):
            self.tools_running += 1
            self._out.append(act.RunTools(calls))
            self._out.append(act.StartTimer(FILLER_TIMER, self.flow.filler.delay_ms))
        if next_req is not None:
            self._send_response(next_req)
        if (
            self.phase is ActionPhase.speaking
            and self.responses.active is None
            and not self.responses.pending
        ):
            # Its audio is all sent: wait for the estimated end of playback, plus grace
            # for the last mark's echo.
            wait = self.unplayed_ms() + self.limits.call_action_grace_ms
            self._out.append(act.StartTimer(ACTION_TIMER, wait))
        self._check_action()

    _HANDLERS: ClassVar[dict[type, Callable[[CallSession, Any], None]]] = {
        ev.SessionUpdated: _on_session_updated,
        ev.Error: _on_error,
        ev.InputAudioBufferSpeechStarted: _on_speech_started,
        ev.InputAudioBufferSpeechStopped: _on_speech_stopped,
        ev.ConversationItemInputAudioTranscriptionCompleted: _on_transcription,
        ev.ResponseCreated: _on_response_created,
        ev.ResponseOutputItemAdded: _on_output_item_added,
        ev.ResponseOutputAudioDone: _on_audio_done,
        ev.ResponseOutputAudioTranscriptDone: _on_transcript_done,
        ev.ResponseDone: _on_response_done,
    }

    # --- transcript ---------------------------------------------------------------------

    def _record_assistant(self, item: PlaybackItem, now: float, final: bool = False) -> None:
        """Store an assistant entry once its fate is known: fully played, interrupted, or the
        call ended. An interrupted entry keeps the share of words that was heard."""
        if item.recorded or (item.transcript is None and not final):
            return
        if not (item.interrupted or item.fully_played() or final):
            return
        text = item.transcript or ""
        heard = item.heard_ms(now)
        interrupted = item.interrupted or (
            item.sent_bytes > 0 and heard < item.generated_ms - FRAME_MS
        )
        if interrupted and item.generated_ms > 0:
            text = cut_text(text, heard / item.generated_ms)
        item.recorded = True
        if not text and not interrupted:
            return
        self.conversation.assistant(text)
        offset = (
            item.offset_ms + self.offset_base_ms
            if item.play_start_ms is not None
            else self.elapsed_ms()
        )
        self._store(act.StoreTranscript("assistant", text, item.item_id, offset, interrupted))

    # --- tools, timers, operator ----------------------------------------------------------

    def on_tool_results(self, outcomes: list[ToolOutcome]) -> list[act.Action]:
        """Tools finished: one ``function_call_output`` each, then one ``response.create``."""
        self.tools_running = max(0, self.tools_running - 1)
        self._out.append(act.CancelTimer(FILLER_TIMER))
        at = self.elapsed_ms()
        for o in outcomes:
            self._store(
                act.StoreToolCall(
                    o.name, o.call_id, o.arguments, o.output, o.error, o.duration_ms, at
                )
            )
            output = orjson.dumps(o.output).decode()
            self.conversation.function_output(o.call_id, output)
            self._realtime(self.client.function_output(o.call_id, output))
        if self.phase is ActionPhase.requested:
            self.phase = ActionPhase.awaiting_response
        if self.leg is LegState.failed or self.capture is not None:
            return self._flush()  # a running keypad capture asks for the next response
        self._response_create(None, "tool")
        return self._flush()

    def on_timer(self, name: str) -> list[act.Action]:
        if name == FILLER_TIMER:
            if self.tools_running and self.responses.idle and self.leg is LegState.ready:
                lines = self.flow.filler.lines
                if lines:
                    line = lines[self._filler_index % len(lines)]
                    self._filler_index += 1
                    self._response_create(say_exactly(line), "filler")
        elif name == DTMF_TIMER and self.dtmf_digits:
            digits = self._record_dtmf()
            if digits:
                text = f"The caller entered {digits} on the keypad."
                self.conversation.user(text)
                self._realtime(self.client.user_text(text))
                self._response_create(None, "dtmf")
        elif name == KEYPAD_TIMER:
            self._capture_timeout()
        elif name == ACTION_TIMER:
            self._execute_action("grace period passed")
        elif name == DEAD_AIR_TIMER:
            if self.leg is not LegState.ready:
                self._fallback(f"no realtime session for {self.limits.dead_air_max_ms} ms")
        elif name == RECONNECT_TIMER:
            if self.leg is LegState.down:
                self._out.append(act.ConnectRealtime())
        elif name == RESPONSE_RETRY_TIMER:
            req = self.responses.retry_if_stuck()
            if req is not None and self.leg is LegState.ready:
                self._send_response(req)
        elif name == ROLLOVER_TIMER:
            self._maybe_roll_over()
        return self._flush()

    def say(self, text: str) -> list[act.Action]:
        """Make the agent say ``text`` now (operator ``/say``); waits for an active response."""
        self._response_create(say_exactly(text), "say")
        return self._flush()

    def operator_hangup(self, reason: str) -> list[act.Action]:
        """Hang up now, not waiting for audio to finish."""
        if self.phase is ActionPhase.executing:
            return self._flush()
        self.pending_action = act.Hangup(reason)
        self.phase = ActionPhase.executing
        self._out.append(act.CancelTimer(ACTION_TIMER))
        if self.machine.can(CallState.ending):
            self.machine.to(CallState.ending)
        self._out.append(self.pending_action)
        return self._flush()

    def _check_action(self) -> None:
        if self.phase is not ActionPhase.speaking:
            return
        if self.responses.active is not None or self.playback.marks or self.tools_running:
            return
        self._execute_action("audio played")

    def _execute_action(self, why: str) -> None:
        if self.pending_action is None or self.phase is ActionPhase.executing:
            return
        self.phase = ActionPhase.executing
        self._out.append(act.CancelTimer(ACTION_TIMER))
        self._log("info", f"{type(self.pending_action).__name__.lower()} now: {why}")
        if self.machine.can(CallState.ending):
            self.machine.to(CallState.ending)
        pending = self.pending_action
        if isinstance(pending, act.Transfer) and pending.mode == "warm":
            self.pending_action = pending = self._warm(pending)
        self._out.append(pending)


@dataclass(slots=True)
class _Counters:
    barge_ins: int = 0
    truncates: int = 0
    deletes: int = 0
    marks_ignored: int = 0
    realtime_errors: int = 0
    realtime_lost: int = 0
    fallbacks: int = 0
    responses: int = 0
