"""Injectable clocks for everything in the dialer that depends on time.

Times are Unix epoch **milliseconds** (``int``) throughout the dialer, as in the rest of
the store. ``SystemClock`` reads the wall clock; ``FakeClock`` only moves when a test
moves it, so schedule logic (windows, back-off, leases, rate limits) is tested without
sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """What the dialer needs from time."""

    def now_ms(self) -> int:
        """Current Unix time in ms."""
        ...

    async def sleep_ms(self, ms: int) -> None:
        """Wait ``ms`` ms of this clock's time (``ms`` ≤ 0 returns after one loop turn)."""
        ...


class SystemClock:
    """The wall clock (``time.time``) and ``asyncio.sleep``."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(max(0, ms) / 1000)


class FakeClock:
    """A clock that moves only on ``advance``/``set``; sleepers wake when it passes them.

    ``start_ms``: initial Unix time in ms. Not thread-safe (one event loop).
    """

    def __init__(self, start_ms: int) -> None:
        self._now = int(start_ms)
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now

    async def sleep_ms(self, ms: int) -> None:
        if ms <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + int(ms), next(self._seq), fut))
        await fut

    def next_wakeup_ms(self) -> int | None:
        """Earliest time a pending sleeper waits for (None: nobody sleeps)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def set(self, now_ms: int) -> None:
        """Move to ``now_ms`` (never backwards; raises ``ValueError``) and wake due sleepers."""
        if now_ms < self._now:
            raise ValueError(f"a fake clock does not go back ({now_ms} < {self._now})")
        self._now = int(now_ms)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance(self, ms: int) -> None:
        """Move forward by ``ms`` (≥ 0)."""
        self.set(self._now + int(ms))
