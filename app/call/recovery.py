"""Realtime leg recovery for the call session: a socket that drops, goes silent or is
refused is replaced (back-off within a budget, the conversation replayed), the service's
session cap is met by a rollover at a quiet moment, and when no session can be had the
flow's fallback runs within ``dead_air_max_ms`` — the caller is never left in silence.

``RealtimeRecovery`` is a part of ``app.call.session.CallSession`` (a mixin: the state it
touches is the session's, declared below); the session's docstring draws the whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from app.call import actions as act
from app.call.conversation import Conversation
from app.call.limits import (
    DEAD_AIR_TIMER,
    FILLER_TIMER,
    RECONNECT_TIMER,
    RESPONSE_RETRY_TIMER,
    ROLLOVER_RETRY_MS,
    ROLLOVER_TIMER,
    SessionLimits,
)
from app.call.playback import Playback
from app.call.responses import ResponseQueue
from app.call.state import CallState, StateMachine
from app.errors import InvalidTransition
from app.realtime.codec import ClientEvents, say_exactly
from flows import Flow


class LegState(StrEnum):
    """The Realtime leg as the session sees it.

    ```
    down ──open──▶ configuring ──session.updated──▶ ready
      ▲                │                              │
      └────lost────────┴──────────────lost────────────┘      any ──▶ failed (fallback)
    ```
    """

    down = "down"  # no socket: not opened yet, reconnecting, or rolling over
    configuring = "configuring"  # socket open, session.update sent
    ready = "ready"  # session.updated: the caller's audio flows to it
    failed = "failed"  # given up; the fallback runs


_LEG_ALLOWED: dict[LegState, frozenset[LegState]] = {
    LegState.down: frozenset({LegState.configuring, LegState.failed}),
    LegState.configuring: frozenset({LegState.ready, LegState.down, LegState.failed}),
    LegState.ready: frozenset({LegState.down, LegState.failed}),
    LegState.failed: frozenset(),
}


class ActionPhase(StrEnum):
    """Where a requested hang-up or transfer stands.

    ``none`` → ``requested`` (a tool or the operator asked) → ``awaiting_response`` (the
    tool results went to the model; its closing line is asked for) → ``speaking`` (that
    line started) → ``executing`` (the ``Hangup``/``Transfer`` action was issued). A grace
    timer or an operator may jump straight to ``executing``.
    """

    none = "none"
    requested = "requested"
    awaiting_response = "awaiting_response"
    speaking = "speaking"
    executing = "executing"


class RealtimeRecovery:
    """The Realtime leg's life: open, lost, reconnect, rollover, fallback."""

    # The session's state this part reads and writes (set in ``CallSession.__init__``).
    flow: Flow
    limits: SessionLimits
    client: ClientEvents
    machine: StateMachine
    leg: LegState
    phase: ActionPhase
    pending_action: act.Hangup | act.Transfer | None
    playback: Playback
    responses: ResponseQueue
    conversation: Conversation
    cancelled_responses: set[str]
    tools: list[dict[str, Any]]
    caller_speaking: str | None
    tools_running: int
    inbound: deque[str]
    opens: int
    lost_at: float | None
    lost_reason: str
    reconnect_attempts: int
    reconnects: int
    reconnect_ms: list[int]
    rollovers: int
    fallback_reason: str
    t0: float
    _resume: bool
    _rollover_due_at: float | None
    _session_update_id: str | None
    _out: list[act.Action]
    now_ms: Callable[[], float]
    counters: Any

    if TYPE_CHECKING:  # CallSession's methods this part calls (no runtime stubs)

        def elapsed_ms(self) -> int: ...

        def unplayed_ms(self) -> int: ...

        def _flush(self) -> list[act.Action]: ...

        def _event(self, kind: str, **fields: str | int) -> None: ...

        def _log(self, level: str, message: str, counter: str | None = None) -> None: ...

        def _store(self, op: act.StoreOp) -> None: ...

        def _response_create(self, instructions: str | None = None, kind: str = "turn") -> None: ...

        def _next_response(self) -> None: ...

    def _leg_to(self, new: LegState) -> None:
        if new not in _LEG_ALLOWED[self.leg]:
            raise InvalidTransition(f"realtime leg {self.leg} -> {new}")
        self.leg = new

    def on_realtime_open(self, tools: list[dict[str, Any]] | None = None) -> list[act.Action]:
        """A Realtime socket is open: ``session.update`` from the flow, then the
        conversation so far (after a reconnect or rollover) as items."""
        from app.realtime.dialect import session_config

        if tools is not None:
            self.tools = tools
        if self.machine.state is CallState.ended or self.leg is LegState.failed:
            return self._flush()
        if self.machine.state is CallState.awaiting_start:
            self.machine.to(CallState.connecting)
        self._leg_to(LegState.configuring)
        self.opens += 1
        update = self.client.session_update(
            session_config(self.flow, self.tools, beta=self.client.beta)
        )
        self._session_update_id = self.client.last_event_id
        self._out.append(act.SendRealtime(update))
        for text in self.conversation.replay(self.client):
            self._out.append(act.SendRealtime(text))
        return self._flush()

    def on_realtime_lost(
        self, reason: str, *, planned: bool = False, silent_for_ms: int = 0
    ) -> list[act.Action]:
        """The Realtime socket is gone (closed, errored, silent past the liveness check),
        or was closed on purpose (``planned``: a rollover). Reopen it with back-off; the
        dead-air timer bounds how long the caller may wait, counted from when the socket
        was last heard (``silent_for_ms`` ago)."""
        self._lost(reason, planned, silent_for_ms)
        return self._flush()

    def _lost(self, reason: str, planned: bool, silent_for_ms: int = 0) -> None:
        if self.leg in (LegState.down, LegState.failed) or self.machine.state is CallState.ended:
            return
        self._leg_to(LegState.down)
        now = self.now_ms()
        active = self.responses.active
        # Nothing more comes of what the old session was producing.
        for item in self.playback.items.values():
            if active and item.response_id == active and not item.audio_done:
                item.audio_done = True
                tail = self.playback.mark_tail(item)
                if tail is not None:
                    self._out.append(act.SendCarrier(tail))
        self.cancelled_responses.clear()
        self._resume = self.responses.lost() or bool(self.responses.pending) or self._resume
        self.caller_speaking = None
        self.lost_at = now
        self.lost_reason = reason
        self.reconnect_attempts = 0
        self._out.append(act.CancelTimer(ROLLOVER_TIMER))
        self._out.append(act.CancelTimer(RESPONSE_RETRY_TIMER))
        if planned:
            self._event("rollover", reason=reason)
        else:
            self.counters.realtime_lost += 1
            self._event("realtime_lost", reason=reason)
            self._log("warning", f"realtime leg lost: {reason}; reconnecting", "realtime_lost")
            left = max(0, self.limits.dead_air_max_ms - silent_for_ms)
            self._out.append(act.StartTimer(DEAD_AIR_TIMER, left))
        self._out.append(act.StartTimer(RECONNECT_TIMER, self._backoff()))

    def on_realtime_connect_failed(self, why: str) -> list[act.Action]:
        """Opening a Realtime socket failed: try again after the back-off, within the
        reconnect budget (the first connect: within ``dead_air_max_ms``)."""
        if self.leg is not LegState.down or self.machine.state is CallState.ended:
            return self._flush()
        self.reconnect_attempts += 1
        since = self.now_ms() - (self.lost_at if self.lost_at is not None else self.t0)
        budget = self.limits.reconnect_budget_ms if self.opens else self.limits.dead_air_max_ms
        delay = self._backoff()
        self._log("warning", f"realtime connect failed ({why}); attempt {self.reconnect_attempts}")
        if since + delay >= budget:
            self._fallback(f"realtime unavailable: {why}")
        else:
            self._out.append(act.StartTimer(RECONNECT_TIMER, delay))
        return self._flush()

    def _backoff(self) -> int:
        steps = self.limits.reconnect_backoff_ms or (0,)
        return steps[min(self.reconnect_attempts, len(steps) - 1)]

    def _fallback(self, reason: str) -> None:
        """No Realtime session: the carrier speaks the flow's apology, then transfers to
        its fallback target or hangs up."""
        if self.leg is LegState.failed or self.machine.state is CallState.ended:
            return
        self._leg_to(LegState.failed)
        for name in (RECONNECT_TIMER, DEAD_AIR_TIMER, ROLLOVER_TIMER, FILLER_TIMER):
            self._out.append(act.CancelTimer(name))
        fb = self.flow.fallback
        target = (
            self.flow.transfer_targets.get(fb.transfer_to, fb.transfer_to) if fb.transfer_to else ""
        )
        self.counters.fallbacks += 1
        self.fallback_reason = reason
        self._event("fallback", reason=reason, target=target or "hangup")
        self._store(
            act.StoreRouting(self.flow.name, f"fallback: {reason}", target, self.elapsed_ms())
        )
        self._log("error", f"fallback: {reason}", "fallback")
        if self.machine.can(CallState.ending):
            self.machine.to(CallState.ending)
        self.phase = ActionPhase.executing
        self._out.append(act.Fallback(fb.line, target, reason))

    def _resumed(self) -> None:
        """A new session after a reconnect or rollover has the conversation: go on."""
        if self.lost_at is not None:
            gap = int(self.now_ms() - self.lost_at)
            if self.lost_reason != "rollover":
                self.reconnects += 1
                self.reconnect_ms.append(gap)
                self._event("realtime_reconnected", reconnect_ms=gap, reason=self.lost_reason)
                self._log("info", f"realtime leg back after {gap} ms", "realtime_reconnected")
            else:
                self.rollovers += 1
            self.lost_at = None
        resume, self._resume = self._resume, False
        line = self.flow.reconnect_line
        if resume and line and self.lost_reason != "rollover":
            self._response_create(say_exactly(line), "resume")
        elif resume and not self.responses.pending and not self.tools_running:
            self._response_create(None, "resume")
        self._next_response()

    def _quiet(self) -> bool:
        """Nothing playing or being produced, the caller silent, no tool running."""
        return (
            self.responses.idle
            and self.unplayed_ms() == 0
            and self.caller_speaking is None
            and not self.tools_running
            and self.phase is ActionPhase.none
        )

    def _maybe_roll_over(self) -> None:
        if self.leg is not LegState.ready:
            return
        now = self.now_ms()
        if self._rollover_due_at is None:
            self._rollover_due_at = now
        late = now - self._rollover_due_at >= self.limits.rollover_grace_ms
        if self._quiet() or late:
            self._out.append(act.CloseRealtime("rollover"))
            self._lost("rollover", planned=True)
        else:
            self._out.append(act.StartTimer(ROLLOVER_TIMER, ROLLOVER_RETRY_MS))

    def end_politely(self, line: str, reason: str) -> list[act.Action]:
        """The carrier says ``line`` (TwiML ``<Say>``) and hangs up: the end of a call still
        live at the shutdown deadline."""
        if self.phase is ActionPhase.executing or self.machine.state is CallState.ended:
            return self._flush()
        self.pending_action = act.Hangup(reason)
        self.phase = ActionPhase.executing
        if self.machine.can(CallState.ending):
            self.machine.to(CallState.ending)
        self._out.append(act.Fallback(line, "", reason))
        return self._flush()
