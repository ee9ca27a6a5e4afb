"""Call control for the call session: transfers (cold and warm), hang-ups and routing
decisions, as the tools' ``CallControl`` and the operator ask for them.

``TransferControl`` is a part of ``app.call.session.CallSession`` (a mixin: the state it
touches is the session's, declared below). A warm transfer (``app.carrier.warm``) is
executed with what the target hears (the briefing) and what the agent resumes with when
nobody takes the call (the conversation so far); ``resume`` seeds a session that brings
the caller back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from app.call import actions as act
from app.call.conversation import Conversation, Entry
from app.call.limits import ACTION_TIMER, SessionLimits
from app.call.recovery import ActionPhase
from app.carrier.warm import briefing
from app.errors import ToolRefused
from app.realtime.codec import say_exactly
from flows import Flow


class TransferControl:
    """Transfers, hang-ups and routing decisions (see the module docstring)."""

    # The session's state this part reads and writes (set in ``CallSession.__init__``).
    flow: Flow
    limits: SessionLimits
    phase: ActionPhase
    pending_action: act.Hangup | act.Transfer | None
    conversation: Conversation
    caller: str
    resume_line: str | None
    offset_base_ms: int
    _out: list[act.Action]

    if TYPE_CHECKING:  # CallSession's methods this part calls (no runtime stubs)

        def elapsed_ms(self) -> int: ...

        def _flush(self) -> list[act.Action]: ...

        def _store(self, op: act.StoreOp) -> None: ...

        def _response_create(self, instructions: str | None = None, kind: str = "turn") -> None: ...

        def _execute_action(self, why: str) -> None: ...

    def operator_transfer(
        self, to_number: str, reason: str, mode: str | None = None
    ) -> list[act.Action]:
        """Transfer: cold now; warm after the flow's ``transfer.hold_line`` has played
        (``mode`` None: the flow's default). Raises ``ToolRefused`` when a transfer was
        already requested or ``mode`` is unknown."""
        self.request_transfer(to_number, reason, mode)
        self.record_routing(to_number, reason)
        transfer = self.pending_action
        if isinstance(transfer, act.Transfer) and transfer.mode == "warm":
            self.phase = ActionPhase.awaiting_response
            self._response_create(say_exactly(self.flow.transfer.hold_line), "tool")
            return self._flush()
        self._execute_action("operator")
        return self._flush()

    def request_transfer(self, to_number: str, reason: str, mode: str | None = None) -> None:
        """Transfer once the current audio has played (``mode``: ``cold``, ``warm`` or None
        for the flow's ``transfer.mode``). Raises ``ToolRefused`` on a second one or an
        unknown mode."""
        mode = mode or self.flow.transfer.mode
        if mode not in ("cold", "warm"):
            raise ToolRefused(f"unknown transfer mode {mode!r}: cold or warm")
        if isinstance(self.pending_action, act.Transfer):
            raise ToolRefused("a transfer was already requested on this call")
        if self.pending_action is not None:
            raise ToolRefused("the call is already ending")
        self.pending_action = act.Transfer(to_number, reason, mode)
        self.phase = ActionPhase.requested
        self._out.append(act.StartTimer(ACTION_TIMER, self.limits.call_action_grace_ms))

    def request_hangup(self, reason: str) -> None:
        if self.pending_action is not None:
            return
        self.pending_action = act.Hangup(reason)
        self.phase = ActionPhase.requested
        self._out.append(act.StartTimer(ACTION_TIMER, self.limits.call_action_grace_ms))

    def record_routing(self, target: str, reason: str) -> None:
        """Store a routing decision; a warm transfer's request says so (its steps follow,
        ``app.carrier.warm``)."""
        pending = self.pending_action
        if isinstance(pending, act.Transfer) and pending.mode == "warm":
            reason = f"warm transfer requested: {reason}"
        self._store(act.StoreRouting(self.flow.name, reason, target, self.elapsed_ms()))

    def _warm(self, pending: act.Transfer) -> act.Transfer:
        """``pending`` with what the target hears and what the agent resumes with."""
        settings = self.flow.transfer
        entries = tuple(self.conversation.entries)
        return replace(
            pending,
            briefing=briefing(entries, caller=self.caller, reason=pending.reason),
            decline_key=settings.decline_key,
            ring_timeout_s=settings.ring_timeout_s or 0,
            entries=entries,
            offset_ms=self.elapsed_ms(),
        )

    def resume(self, entries: Iterable[Entry], line: str, offset_base_ms: int) -> None:
        """The caller is back from a warm transfer nobody took: the conversation so far
        (replayed into the first Realtime session), ``line`` said first instead of the
        greeting, offsets continuing from ``offset_base_ms``."""
        for e in entries:
            self.conversation.entries.append(e)
        self.resume_line = line
        self.offset_base_ms = max(0, offset_base_ms)
