"""The call state enum and its guarded transitions.

```
awaiting_start ──start+token──▶ connecting ──session.updated──▶ active ──▶ ending ──▶ ended
       │                            │                              │                  ▲
       └────────────────────────────┴──────────────────────────────┴──────────────────┘
```
Any state may go straight to ``ended`` (an abort). Anything else raises
``InvalidTransition``.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import InvalidTransition


class CallState(StrEnum):
    awaiting_start = "awaiting_start"  # socket accepted, no valid `start` yet
    connecting = "connecting"  # token checked, Realtime leg opening/configuring
    active = "active"  # audio bridged both ways
    ending = "ending"  # hang-up/transfer requested or carrier stopped; draining
    ended = "ended"


ALLOWED: dict[CallState, frozenset[CallState]] = {
    CallState.awaiting_start: frozenset({CallState.connecting, CallState.ended}),
    CallState.connecting: frozenset({CallState.active, CallState.ending, CallState.ended}),
    CallState.active: frozenset({CallState.ending, CallState.ended}),
    CallState.ending: frozenset({CallState.ended}),
    CallState.ended: frozenset(),
}


class StateMachine:
    """Holds one call's state; ``to()`` enforces ``ALLOWED``."""

    __slots__ = ("history", "state")

    def __init__(self) -> None:
        self.state = CallState.awaiting_start
        self.history: list[CallState] = [self.state]

    def to(self, new: CallState) -> None:
        """Move to ``new``. Raises ``InvalidTransition`` when not allowed from the current state."""
        if new not in ALLOWED[self.state]:
            raise InvalidTransition(f"{self.state} -> {new}")
        self.state = new
        self.history.append(new)

    def can(self, new: CallState) -> bool:
        return new in ALLOWED[self.state]
