"""One response at a time: every ``response.create`` of a call goes through this queue.

The Realtime service refuses a second ``response.create`` while one is active (``error``
code ``conversation_already_has_active_response``, docs/protocols.md §1 "Errors"), and
with ``server_vad`` it also starts responses of its own when the caller stops talking. So
the greeting, filler lines, tool follow-ups, keypad turns, operator ``say`` and the line
after a reconnect are requests here: one is sent only when no response is active, the
next after ``response.done``; a refused one goes back to the head of the queue and waits
for the active response to finish — never dropped.

States of ``active``: ``None`` idle; ``""`` a ``response.create`` was sent and its
``response.created`` has not come yet; otherwise the id of the active response.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from app.errors import QueueFull


@dataclass(frozen=True, slots=True)
class Request:
    """A ``response.create`` to send: optional per-response ``instructions``; ``kind``
    says what it is for (``greeting``, ``filler``, ``tool``, ``dtmf``, ``say``,
    ``resume``), for logs and for the filler rule."""

    instructions: str | None
    kind: str


class ResponseQueue:
    """Requests waiting for their turn (at most ``max_pending``)."""

    __slots__ = ("active", "inflight", "max_pending", "pending")

    def __init__(self, max_pending: int = 8) -> None:
        self.max_pending = max_pending
        self.pending: deque[Request] = deque()
        self.active: str | None = None
        self.inflight: Request | None = None  # sent, not yet created (or refused)

    @property
    def idle(self) -> bool:
        """No response active or requested, nothing queued."""
        return self.active is None and not self.pending

    def request(self, req: Request) -> Request | None:
        """Ask for a response: the request to send now, or None when it was queued.

        Raises ``QueueFull`` past ``max_pending`` queued requests.
        """
        if self.active is None and not self.pending:
            return self._send(req)
        if len(self.pending) >= self.max_pending:
            raise QueueFull(f"{len(self.pending)} responses already queued")
        self.pending.append(req)
        return None

    def _send(self, req: Request) -> Request:
        self.active = ""
        self.inflight = req
        return req

    def next(self) -> Request | None:
        """The queued request to send now that nothing is active, if any."""
        if self.active is None and self.pending:
            return self._send(self.pending.popleft())
        return None

    def on_created(self, response_id: str) -> None:
        """``response.created``: ours, or one the service started itself (server VAD)."""
        self.active = response_id
        self.inflight = None

    def on_done(self, response_id: str) -> Request | None:
        """``response.done``: the next queued request to send, if any."""
        if self.active in (response_id, "", None) or not response_id:
            self.active = None
        return self.next()

    def on_refused(self, busy: bool) -> Request | None:
        """Our ``response.create`` was refused. ``busy``: because another response is
        active — the request goes back to the head of the queue and waits for that one's
        ``response.done``. Otherwise it is given up and the next one may go."""
        req, self.inflight = self.inflight, None
        if busy:
            if req is not None:
                self.pending.appendleft(req)
            return None
        if self.active == "":
            self.active = None
        return self.next()

    def retry_if_stuck(self) -> Request | None:
        """After a refusal as busy, no ``response.created``/``done`` came: the active
        response had already ended. Send the head of the queue."""
        if self.active == "" and self.inflight is None:
            self.active = None
        return self.next()

    def lost(self) -> bool:
        """The Realtime session is gone with whatever it had active. Returns whether a
        response was active or requested (the new session should be asked to go on)."""
        was = self.active is not None
        if self.inflight is not None:
            self.pending.appendleft(self.inflight)
            self.inflight = None
        self.active = None
        return was
