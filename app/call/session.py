"""The call session: a sans-I/O state machine for one call.

It owns barge-in, playback accounting, tool round trips, call actions (hang-up, transfer)
and the transcript. Inputs are decoded carrier and Realtime events, mark echoes, timer
expiries and tool outcomes; every handler returns the ``Action``s to perform, in order.
Time comes from an injected ``now_ms`` clock so tests drive it with a fake clock.

Playback accounting (protocols.md §1 "Barge-in over a WebSocket", §2 "Media Streams"):
after an outbound audio chunk a ``mark`` named ``<item_id>:<n>`` is sent, once at least
``MARK_EVERY_MS`` of audio went out since the previous one (so every chunk of 100 ms or
more, every fifth of 20 ms chunks), and after the item's last chunk. When Twilio
echoes it, the audio before it has played. The playhead is estimated from the send log:
the carrier plays what it was sent in order and in real time, and pauses when its queue
runs dry, so each chunk starts no earlier than it was sent (audio sent at real-time pace
makes such pauses common). Echoes correct the estimate only when they prove it wrong
(see ``PlaybackItem.on_echo``): they arrive late by the network delay. So ``heard_ms``
is accurate to well within one 20 ms frame even with 100 ms between marks, and small
chunks do not cost one mark and one echo each. On
``input_audio_buffer.speech_started`` the session sends ``clear`` first, then
``conversation.item.truncate`` with ``audio_end_ms`` = heard (none when nothing was
heard, never past the generated audio). Marks echoed after a ``clear`` are ignored: Twilio
echoes every pending mark on ``clear``, so an echo then proves nothing.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from app.audio import BYTES_PER_MS, FRAME_MS
from app.call import actions as act
from app.call.state import CallState, StateMachine
from app.carrier.twilio import encode_clear, encode_mark, encode_media
from app.errors import ToolRefused
from app.realtime import events as ev
from app.realtime.codec import ClientEvents, say_exactly
from flows import Flow
from tools.base import ToolOutcome

FILLER_TIMER = "filler"
DTMF_TIMER = "dtmf"
ACTION_TIMER = "call_action"
#: response.create requests queued behind an active response.
MAX_PENDING_CREATES = 8
#: Audio (ms) sent between two marks at most, unless the item ends sooner.
MARK_EVERY_MS = 100
_MARK_EVERY_BYTES = MARK_EVERY_MS * BYTES_PER_MS


@dataclass(slots=True)
class PlaybackItem:
    """One assistant item's audio as sent to the carrier (all ms at 8 kHz μ-law)."""

    item_id: str
    response_id: str
    generated_bytes: int = 0  # every delta received, including ones dropped after barge-in
    sent_bytes: int = 0  # what was forwarded to the carrier
    marked_bytes: int = 0  # position of the last mark sent after it
    play_start_ms: float | None = None  # clock time its first byte starts playing (estimate)
    offset_ms: int = 0  # call-relative time playback started
    play_end_ms: float = 0.0  # clock time all audio sent so far has played (estimate)
    echoed_ms: float = 0.0  # audio proven played: the furthest echoed mark
    audio_done: bool = False
    transcript: str | None = None
    interrupted: bool = False
    heard_final_ms: float | None = None
    recorded: bool = False

    @property
    def sent_ms(self) -> float:
        return self.sent_bytes / BYTES_PER_MS

    @property
    def generated_ms(self) -> float:
        return self.generated_bytes / BYTES_PER_MS

    def heard_ms(self, now: float) -> float:
        """Estimated ms of this item the caller has heard at clock time ``now``."""
        if self.heard_final_ms is not None:
            return self.heard_final_ms
        if self.sent_bytes == 0 or self.play_start_ms is None:
            return 0.0
        sent_ms = self.sent_ms
        queued = self.play_end_ms - now  # sent audio still waiting to play
        estimate = sent_ms - queued if queued > 0 else sent_ms
        return max(0.0, min(sent_ms, max(self.echoed_ms, estimate)))

    def sent_chunk(self, ms: float, now: float) -> None:
        """A chunk of ``ms`` went to the carrier at ``now``: it plays after what is queued,
        and not before it arrives (the carrier's queue may have run dry)."""
        end = self.play_end_ms
        self.play_end_ms = (end if end > now else now) + ms

    def on_echo(self, cum_ms: float, now: float, stall_tolerance_ms: float) -> None:
        """A mark at ``cum_ms`` came back at ``now``.

        Echoes arrive late by the carrier's network latency (and Twilio's own timing), so
        re-anchoring on every echo would bias the playhead low by that delay. The estimate
        from the send log stands unless an echo proves it wrong: the echo is ahead of it
        (playback started sooner than assumed), or more than ``stall_tolerance_ms`` behind
        it (playback stalled for a reason the send log cannot show, e.g. the carrier's own
        network); then what is left plays from ``now``. Pauses because audio came slower
        than real time need no echo: ``sent_chunk`` already accounts for them.
        """
        self.echoed_ms = max(self.echoed_ms, cum_ms)
        predicted = self.heard_ms(now)
        if cum_ms > predicted or predicted - cum_ms > stall_tolerance_ms:
            self.play_end_ms = now + (self.sent_ms - cum_ms)  # the rest plays from now

    def fully_played(self) -> bool:
        return self.audio_done and self.echoed_ms >= self.sent_ms


@dataclass(slots=True)
class SessionCounters:
    barge_ins: int = 0
    truncates: int = 0
    marks_ignored: int = 0
    realtime_errors: int = 0
    responses: int = 0


def cut_text(text: str, fraction: float) -> str:
    """The first ``fraction`` (0..1) of ``text``'s words: what a listener heard of it."""
    words = text.split()
    keep = max(0, min(len(words), round(len(words) * fraction)))
    return " ".join(words[:keep])


class CallSession:
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
        call_action_grace_ms: int = 10_000,
        playback_stall_tolerance_ms: int = 60,
        dtmf_gap_ms: int = 1500,
    ) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.flow = flow
        self.client = ClientEvents(beta=beta)
        self.now_ms = now_ms
        self.t0 = now_ms()
        self.machine = StateMachine()
        self.counters = SessionCounters()
        self.call_action_grace_ms = call_action_grace_ms
        self.playback_stall_tolerance_ms = playback_stall_tolerance_ms
        self.dtmf_gap_ms = dtmf_gap_ms

        self.items: dict[str, PlaybackItem] = {}
        self.playing: PlaybackItem | None = None
        self.marks: dict[str, tuple[PlaybackItem, float]] = {}
        self._mark_seq = itertools.count(1)
        self.response_id: str | None = None
        self.cancelled_responses: set[str] = set()
        self.pending_creates: deque[str | None] = deque()
        self.speech_start_ms: dict[str, int] = {}
        self.last_speech_stop_t: float | None = None
        self.turn_latencies_ms: list[int] = []
        self.tools_running = 0
        self.pending_action: act.Hangup | act.Transfer | None = None
        self.action_done = False
        self._awaiting_action_response = False
        self._action_response_seen = False
        self.transfer_requested = False
        self.dtmf_digits: list[str] = []
        self.configured = False
        self._out: list[act.Action] = []
        self._filler_index = 0

    # --- helpers ----------------------------------------------------------------------------

    def elapsed_ms(self) -> int:
        """ms since the stream started (the call-relative offset used in the transcript)."""
        return int(self.now_ms() - self.t0)

    def _flush(self) -> list[act.Action]:
        out, self._out = self._out, []
        return out

    def _realtime(self, text: str) -> None:
        self._out.append(act.SendRealtime(text))

    def _store(self, op: act.StoreOp) -> None:
        self._out.append(act.Store(op))

    def _log(self, level: str, message: str, counter: str | None = None) -> None:
        self._out.append(act.Log(level, message, counter))

    def _response_create(self, instructions: str | None = None) -> None:
        """Send ``response.create`` now, or once the active response is done (one at a time:
        the service refuses a second active response)."""
        if self.response_id is None and not self.pending_creates:
            self._realtime(self.client.response_create(instructions))
            self.response_id = ""  # requested; `response.created` fills in the id
        elif len(self.pending_creates) < MAX_PENDING_CREATES:
            self.pending_creates.append(instructions)
        else:
            self._log("warning", "too many queued responses; dropping one", "response_dropped")

    def _next_pending_create(self) -> None:
        if self.response_id is None and self.pending_creates:
            instructions = self.pending_creates.popleft()
            self._realtime(self.client.response_create(instructions))
            self.response_id = ""

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, tools: list[dict[str, Any]]) -> list[act.Action]:
        """Token checked, Realtime leg open: configure it from the flow (``session.update``)."""
        from app.realtime.dialect import session_config

        self.machine.to(CallState.connecting)
        self._realtime(
            self.client.session_update(session_config(self.flow, tools, beta=self.client.beta))
        )
        return self._flush()

    def end_reason(self, default: str) -> str:
        """Why the call ended, naming the hang-up/transfer that caused the carrier's stop."""
        if self.action_done and self.pending_action is not None:
            return f"{type(self.pending_action).__name__.lower()}: {self.pending_action.reason}"
        return default

    def end(self, reason: str) -> list[act.Action]:
        """The call is over: record what is still unrecorded (heard estimates) and stop."""
        if self.machine.state is CallState.ended:
            return []
        now = self.now_ms()
        for item in self.items.values():
            self._record_assistant(item, now, final=True)
        if self.dtmf_digits:
            self._record_dtmf()
        self.machine.to(CallState.ended)
        self._store(
            act.StoreCallFields(
                {
                    "end_reason": reason,
                    "turn_latencies_ms": orjson.dumps(self.turn_latencies_ms).decode(),
                    "barge_ins": self.counters.barge_ins,
                }
            )
        )
        return self._flush()

    # --- carrier inputs ---------------------------------------------------------------------

    def on_mark(self, name: str) -> list[act.Action]:
        """A ``mark`` echo: the audio sent before it has played."""
        entry = self.marks.pop(name, None)
        if entry is None:
            self.counters.marks_ignored += 1
            return []
        item, cum_ms = entry
        item.on_echo(cum_ms, self.now_ms(), self.playback_stall_tolerance_ms)
        if item.fully_played():
            self._record_assistant(item, self.now_ms())
        self._check_action()
        return self._flush()

    def on_dtmf(self, digit: str) -> list[act.Action]:
        """A keypad digit: collected, then sent as one user text item after a pause or ``#``."""
        self.dtmf_digits.append(digit)
        if digit == "#":
            return self.on_timer(DTMF_TIMER)
        self._out.append(act.StartTimer(DTMF_TIMER, self.dtmf_gap_ms))
        return self._flush()

    def _record_dtmf(self) -> str:
        digits = "".join(self.dtmf_digits).rstrip("#")
        self.dtmf_digits.clear()
        self._store(act.StoreTranscript("user", f"[keypad] {digits}", "", self.elapsed_ms(), False))
        return digits

    # --- Realtime inputs --------------------------------------------------------------------

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
        item = self.items.get(event.item_id)
        if item is None:
            item = self._new_item(event.item_id, event.response_id)
        item.generated_bytes += event.size
        if item.interrupted or event.response_id in self.cancelled_responses:
            return None
        now = self.now_ms()
        if item.sent_bytes == 0:
            self._start_playing(item, now)
        item.sent_bytes += event.size
        item.sent_chunk(event.size / BYTES_PER_MS, now)
        media = encode_media(self.stream_sid, event.delta)
        if item.sent_bytes - item.marked_bytes < _MARK_EVERY_BYTES:
            return (media,)
        return media, self._mark(item)

    def _mark(self, item: PlaybackItem) -> str:
        """A mark after everything sent of ``item`` so far (the carrier message)."""
        item.marked_bytes = item.sent_bytes
        name = f"{item.item_id}:{next(self._mark_seq)}"
        self.marks[name] = (item, item.sent_bytes / BYTES_PER_MS)
        return encode_mark(self.stream_sid, name)

    def _mark_tail(self, item: PlaybackItem) -> None:
        """``item`` has no more audio: mark its unmarked tail, so its end is observed."""
        if item.sent_bytes > item.marked_bytes and not item.interrupted:
            self._out.append(act.SendCarrier(self._mark(item)))

    def _start_playing(self, item: PlaybackItem, now: float) -> None:
        """``item``'s first audio goes out at ``now``: place it on the playback timeline,
        after the previous item's audio unless that was cleared."""
        prev = self.playing
        start = now
        if (
            prev is not None
            and prev is not item
            and prev.play_start_ms is not None
            and not prev.interrupted
        ):
            start = max(now, prev.play_end_ms)
        item.play_start_ms = start
        item.play_end_ms = start
        item.offset_ms = int(start - self.t0)
        self.playing = item
        if self.last_speech_stop_t is not None:
            self.turn_latencies_ms.append(int(now - self.last_speech_stop_t))
            self.last_speech_stop_t = None

    def unplayed_ms(self) -> int:
        """Estimated ms of sent audio the carrier has not played yet (items play in order)."""
        item = self.playing
        if item is None or item.interrupted or item.play_start_ms is None:
            return 0
        return max(0, int(item.play_end_ms - self.now_ms()))

    def _new_item(self, item_id: str, response_id: str) -> PlaybackItem:
        item = PlaybackItem(item_id=item_id, response_id=response_id)
        self.items[item_id] = item
        return item

    def _on_session_updated(self, _: ev.SessionUpdated) -> None:
        if self.configured:
            return
        self.configured = True
        self.machine.to(CallState.active)
        if self.flow.greeting:
            self._response_create(say_exactly(self.flow.greeting))

    def _on_error(self, event: ev.Error) -> None:
        self.counters.realtime_errors += 1
        if self.response_id == "":
            # Our response.create was refused (or something else failed before it was
            # created); never stay blocked waiting for a response that will not come.
            self.response_id = None
        self._log(
            "warning",
            f"realtime error {event.type}/{event.code}: {event.message} (event {event.event_id})",
            counter="realtime_error",
        )

    def _on_speech_started(self, event: ev.InputAudioBufferSpeechStarted) -> None:
        self.speech_start_ms[event.item_id] = event.audio_start_ms
        if not self.flow.vad.interrupt_response:
            return
        now = self.now_ms()
        if self.response_id is not None:
            # server_vad cancels the response server-side; drop its in-flight audio.
            self.cancelled_responses.add(self.response_id)
        item = self.playing
        if item is None or item.interrupted:
            return
        heard = item.heard_ms(now)
        if heard >= item.sent_ms and (item.audio_done or item.response_id != self.response_id):
            return  # everything sent has played and nothing more is coming: no barge-in
        self.counters.barge_ins += 1
        self._out.append(act.SendCarrier(encode_clear(self.stream_sid), control=True))
        self.marks.clear()  # echoes of marks flushed by `clear` prove nothing
        heard_ms = int(min(heard, item.sent_ms))
        item.interrupted = True
        item.heard_final_ms = heard_ms
        if heard_ms > 0:
            self.counters.truncates += 1
            self._realtime(self.client.truncate(item.item_id, heard_ms))
        self._log("info", f"barge-in: item {item.item_id} heard {heard_ms} ms", "barge_in")
        self._record_assistant(item, now)

    def _on_speech_stopped(self, event: ev.InputAudioBufferSpeechStopped) -> None:
        # `audio_end_ms` is on the input-audio timeline, which starts with the stream (the
        # bridge buffers from `start`), so it maps onto this session's clock from t0.
        self.last_speech_stop_t = min(self.now_ms(), self.t0 + event.audio_end_ms)

    def _on_transcription(self, event: ev.ConversationItemInputAudioTranscriptionCompleted) -> None:
        offset = self.speech_start_ms.pop(event.item_id, self.elapsed_ms())
        text = event.transcript.strip()
        if text:
            self._store(act.StoreTranscript("user", text, event.item_id, offset, False))

    def _on_response_created(self, event: ev.ResponseCreated) -> None:
        self.response_id = event.response_id
        self.counters.responses += 1
        if self._awaiting_action_response:
            self._action_response_seen = True
            self._awaiting_action_response = False
            # The goodbye/transfer line is starting: the grace period now covers its
            # playback, not the time it took to produce it.
            self._out.append(act.StartTimer(ACTION_TIMER, self.call_action_grace_ms))

    def _on_output_item_added(self, event: ev.ResponseOutputItemAdded) -> None:
        item = event.item
        item_id = item.get("id")
        if item.get("type") == "message" and isinstance(item_id, str) and item_id not in self.items:
            self._new_item(item_id, event.response_id)

    def _on_audio_done(self, event: ev.ResponseOutputAudioDone) -> None:
        item = self.items.get(event.item_id)
        if item is not None:
            item.audio_done = True
            self._mark_tail(item)

    def _on_transcript_done(self, event: ev.ResponseOutputAudioTranscriptDone) -> None:
        item = self.items.get(event.item_id) or self._new_item(event.item_id, event.response_id)
        item.transcript = event.transcript
        self._record_assistant(item, self.now_ms())

    def _on_response_done(self, event: ev.ResponseDone) -> None:
        if event.usage:
            self._store(act.StoreUsage(event.usage))
        if self.response_id in (event.response_id, None) or not event.response_id:
            self.response_id = None
        cancelled = event.response_id in self.cancelled_responses
        self.cancelled_responses.discard(event.response_id)
        for out in event.output:
            if out.get("type") == "message" and isinstance(out.get("id"), str):
                item = self.items.get(out["id"])
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
        if calls and not cancelled and event.status in ("completed", "incomplete"):
            self.tools_running += 1
            self._out.append(act.RunTools(calls))
            self._out.append(act.StartTimer(FILLER_TIMER, self.flow.filler.delay_ms))
        else:
            self._next_pending_create()
        if self._action_response_seen and not self.action_done and self.response_id is None:
            # Its audio is all sent: wait for the estimated end of playback, plus grace
            # for the last mark's echo.
            wait = self.unplayed_ms() + self.call_action_grace_ms
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

    # --- transcript -------------------------------------------------------------------------

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
        offset = item.offset_ms if item.play_start_ms is not None else self.elapsed_ms()
        self._store(act.StoreTranscript("assistant", text, item.item_id, offset, interrupted))

    # --- tools ------------------------------------------------------------------------------

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
            self._realtime(self.client.function_output(o.call_id, orjson.dumps(o.output).decode()))
        if self.pending_action is not None and not self.action_done:
            self._awaiting_action_response = True
        self._response_create()
        return self._flush()

    def on_timer(self, name: str) -> list[act.Action]:
        if name == FILLER_TIMER and self.tools_running and self.response_id is None:
            lines = self.flow.filler.lines
            if lines:
                line = lines[self._filler_index % len(lines)]
                self._filler_index += 1
                self._realtime(self.client.response_create(say_exactly(line)))
        elif name == DTMF_TIMER and self.dtmf_digits:
            digits = self._record_dtmf()
            if digits:
                self._realtime(self.client.user_text(f"The caller entered {digits} on the keypad."))
                self._response_create()
        elif name == ACTION_TIMER:
            self._execute_action("grace period passed")
        return self._flush()

    def say(self, text: str) -> list[act.Action]:
        """Make the agent say ``text`` now (operator ``/say``); waits for an active response."""
        self._response_create(say_exactly(text))
        return self._flush()

    # CallControl -----------------------------------------------------------------------------

    def request_transfer(self, to_number: str, reason: str) -> None:
        """Transfer once the current audio has played. Raises ``ToolRefused`` on a second one."""
        if self.transfer_requested:
            raise ToolRefused("a transfer was already requested on this call")
        if isinstance(self.pending_action, act.Hangup):
            raise ToolRefused("the call is already ending")
        self.transfer_requested = True
        self.pending_action = act.Transfer(to_number, reason)
        self._out.append(act.StartTimer(ACTION_TIMER, self.call_action_grace_ms))

    def request_hangup(self, reason: str) -> None:
        if self.pending_action is not None:
            return
        self.pending_action = act.Hangup(reason)
        self._out.append(act.StartTimer(ACTION_TIMER, self.call_action_grace_ms))

    def record_routing(self, target: str, reason: str) -> None:
        self._store(act.StoreRouting(self.flow.name, reason, target, self.elapsed_ms()))

    def _check_action(self) -> None:
        if self.pending_action is None or self.action_done or not self._action_response_seen:
            return
        if self.response_id is not None or self.marks or self.tools_running:
            return
        self._execute_action("audio played")

    def _execute_action(self, why: str) -> None:
        if self.pending_action is None or self.action_done:
            return
        self.action_done = True
        self._out.append(act.CancelTimer(ACTION_TIMER))
        self._log("info", f"{type(self.pending_action).__name__.lower()} now: {why}")
        if self.machine.can(CallState.ending):
            self.machine.to(CallState.ending)
        self._out.append(self.pending_action)
