"""The calls this process is bridging, seen through the ``LiveCall`` protocol.

The admin API's live control (hang-up, transfer, say; any instance, via Redis pub/sub),
the live-call registry's heartbeat and the shutdown drain reach a call only through
these methods, never into a bridge's internals.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.call.session import CallSession


class LiveCall(Protocol):
    """A call in progress on this instance (``app.call.bridge.CallBridge``)."""

    @property
    def call_sid(self) -> str: ...

    @property
    def session(self) -> CallSession | None:
        """The call's session (read it, never drive it: commands go through the methods
        below); None until the stream's ``start`` was accepted."""
        ...

    def snapshot(self) -> dict[str, str | int]:
        """What an operator may see now: ``flow``, ``direction``, ``from_masked``,
        ``to_masked`` (numbers masked), ``state``, ``realtime`` (the Realtime leg's
        state), ``elapsed_ms``, ``barge_ins``, ``reconnects``."""
        ...

    def hangup(self, reason: str = "operator") -> None:
        """Hang up now through the carrier's REST API."""
        ...

    def transfer(self, to_number: str, reason: str = "operator", mode: str | None = None) -> None:
        """Transfer (``mode`` cold: now; warm: ring and brief the target first; None: the
        flow's default). Raises ``app.errors.ToolRefused`` for a second transfer."""
        ...

    def say(self, text: str) -> None:
        """Make the agent say ``text`` (after the active response, if any)."""
        ...

    def end_politely(self, line: str, reason: str) -> None:
        """Say ``line`` through the carrier and hang up (the shutdown deadline)."""
        ...

    def abort(self, reason: str) -> None:
        """End the call now (its task group fails with ``CallAborted``)."""
        ...


@dataclass
class LiveCalls:
    """Calls bridged by this process, by ``CallSid``."""

    calls: dict[str, LiveCall] = field(default_factory=dict)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set on every add/remove (the live-call registry clears it and refreshes Redis).
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, call: LiveCall) -> None:
        self.calls[call.call_sid] = call
        self.idle.clear()
        self.changed.set()

    def remove(self, call_sid: str, call: LiveCall | None = None) -> None:
        """Forget ``call_sid`` (only while it is ``call``, when given: a warm transfer's
        next stream may already be bridged under the same CallSid)."""
        if call is None or self.calls.get(call_sid) is call:
            self.calls.pop(call_sid, None)
        if not self.calls:
            self.idle.set()
        self.changed.set()
