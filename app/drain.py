"""The graceful drain on SIGTERM (README "Reliability"), in a fixed order:

1. at once: ``/readyz`` answers 503 (``Services.ready``) and the dialer places no new
   calls; webhooks and media streams still arriving are served, because the load balancer
   needs a moment to notice;
2. after ``drain_grace_ms``: new calls and media streams are refused, and the HTTP
   server's own shutdown begins (uvicorn's SIGTERM handling, passed on);
3. the app's lifespan then drains: every live call keeps both sockets until it ends on its
   own or ``shutdown_drain_s`` (counted from the SIGTERM) passes; calls still live then
   are ended politely (a closing line through the carrier, then hang-up) with
   ``end_reason`` ``shutdown``; then storage closes (``app.api.main``).

A second SIGTERM (or SIGINT) skips the grace and goes to step 2 at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], Any]


class GracefulDrain:
    """Puts itself in front of the process's SIGTERM/SIGINT handlers (uvicorn's) while the
    app runs. ``begin`` runs step 1 and returns at once; ``pass_on`` hands the signal to the
    previous handler (step 2). ``started_at``: loop time of the first signal."""

    def __init__(
        self,
        grace_ms: int,
        on_begin: Callable[[], None],
        on_refuse: Callable[[], None],
    ) -> None:
        self.grace_s = grace_ms / 1000
        self.on_begin = on_begin
        self.on_refuse = on_refuse
        self.started_at: float | None = None
        self._previous: dict[int, Handler | int | None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._passed = False

    def install(self) -> None:
        """Take SIGTERM and SIGINT (main thread only; elsewhere, e.g. tests, nothing)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                return
            self._previous[sig] = previous

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            if callable(previous) or isinstance(previous, int):
                signal.signal(sig, previous)
        self._previous.clear()
        if self._timer is not None:
            self._timer.cancel()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        loop = asyncio.get_event_loop()
        if self.started_at is not None:  # a second signal: no more grace
            loop.call_soon_threadsafe(self._pass_on, sig, frame)
            return
        self.started_at = loop.time()
        loop.call_soon_threadsafe(self._begin, sig, frame)

    def _begin(self, sig: int, frame: FrameType | None) -> None:
        log.warning(
            "%s: draining (readyz 503; new calls served for %.1f s more)",
            signal.Signals(sig).name,
            self.grace_s,
        )
        self.on_begin()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.grace_s, self._pass_on, sig, frame)

    def _pass_on(self, sig: int, frame: FrameType | None) -> None:
        if self._passed:
            return
        self._passed = True
        if self._timer is not None:
            self._timer.cancel()
        self.on_refuse()
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)
        else:  # nobody else handles it: end the loop's main task as SIGINT would
            raise KeyboardInterrupt
