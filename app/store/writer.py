"""Per-call store writer: keeps Redis off the audio path.

The call session ``submit()``s zero-argument factories (``lambda: store.append_transcript(...)``);
``run()`` (a task in the call's task group) awaits them one at a time, in order. A
failing op is logged with its name, retried once and then counted in ``failed``; it
never ends the call. The queue is bounded: beyond ``max_pending`` ops are dropped and
counted (``dropped``), with one error log per call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

OpFactory = Callable[[], Awaitable[object]]


def _op_name(factory: OpFactory, awaitable: Awaitable[object] | None) -> str:
    for obj in (awaitable, getattr(factory, "func", None), factory):
        name = getattr(obj, "__qualname__", None)
        if isinstance(name, str) and name != "<lambda>":
            return name
    return repr(factory)


class StoreWriter:
    """Ordered, bounded, non-blocking queue of store writes for one call.

    ``call_sid`` is used in logs only. ``max_pending`` (≥ 1) bounds queued ops
    (``Settings.store_queue_max``); ``retry_delay_s`` is the pause before the single
    retry of a failed op. Counters: ``written`` (ops that succeeded, retried or not),
    ``failed`` (ops that failed twice), ``dropped`` (ops refused because the queue was
    full or the writer closed, or abandoned when ``close`` ran out of time).
    """

    def __init__(
        self,
        call_sid: str,
        *,
        max_pending: int = 10_000,
        retry_delay_s: float = 0.05,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.call_sid = call_sid
        self.max_pending = max_pending
        self.retry_delay_s = retry_delay_s
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self._queue: deque[OpFactory] = deque()
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._closing = False
        self._abandon = False
        self._overflow_logged = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight = False
        self._running = False

    @property
    def pending(self) -> int:
        """Ops queued and not yet started."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called; later submits are dropped."""
        return self._closing

    def submit(self, coro_factory: OpFactory) -> None:
        """Queue one write; never blocks, never awaits, never raises.

        ``coro_factory`` is called (possibly twice, on retry) by ``run()`` to get the
        awaitable. When the queue holds ``max_pending`` ops or the writer is closed the
        op is dropped and counted.
        """
        if self._closing:
            self._drop(1, "writer closed")
            return
        if len(self._queue) >= self.max_pending:
            self._drop(1, f"queue full ({self.max_pending} pending)")
            return
        self._queue.append(coro_factory)
        self._wake.set()

    async def run(self) -> None:
        """Await queued ops in order until ``close()`` and the queue is empty.

        Run it once, as a task of the call (a second concurrent ``run`` just waits for
        the first to finish). Op failures are logged and counted, never
        raised. Cancellation propagates, except the cancellation ``close()`` itself
        issues when its deadline passes (then ``run`` returns normally).
        """
        if self._running or self._done.is_set():
            # close() is draining inline (or already did): nothing left for us to do.
            await self._done.wait()
            return
        self._running = True
        task = asyncio.current_task()
        self._task = task
        try:
            while True:
                self._wake.clear()
                while self._queue:
                    factory = self._queue.popleft()
                    self._in_flight = True
                    await self._execute(factory)
                    self._in_flight = False
                if self._closing:
                    return
                await self._wake.wait()
        except asyncio.CancelledError:
            if self._abandon and task is not None and task.cancelling() <= 1:
                task.uncancel()
                return
            raise
        finally:
            self._running = False
            self._done.set()

    async def close(self, timeout_s: float) -> None:
        """Stop accepting ops, drain the queue within ``timeout_s`` seconds, then stop.

        When ``run()`` is not running the queue is drained here. Ops still queued (or
        in flight) at the deadline are abandoned, counted in ``dropped`` and logged.
        Never raises on timeout.
        """
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                if self._running:
                    await self._done.wait()
                # Whatever is still queued (run() never started, or was cancelled with
                # its task group) is drained here, in order.
                while self._queue:
                    factory = self._queue.popleft()
                    self._in_flight = True
                    await self._execute(factory)
                    self._in_flight = False
                self._done.set()
            return
        except TimeoutError:
            pass
        left = len(self._queue)
        self._queue.clear()
        in_flight = self._in_flight
        if not self._done.is_set() and self._task is not None and not self._task.done():
            self._abandon = True
            self._task.cancel()
            try:
                async with asyncio.timeout(0.5):
                    await self._done.wait()
            except TimeoutError:
                log.error("store writer for call %s did not stop after cancel", self.call_sid)
        abandoned = left + (1 if in_flight else 0)
        self.dropped += abandoned
        log.error(
            "store writer for call %s: close deadline %.3fs passed, %d write(s) abandoned",
            self.call_sid,
            timeout_s,
            abandoned,
        )

    async def _execute(self, factory: OpFactory) -> None:
        name = "?"
        for attempt in (1, 2):
            awaitable: Awaitable[object] | None = None
            try:
                awaitable = factory()
                name = _op_name(factory, awaitable)
                await awaitable
            except Exception as exc:
                if awaitable is None:
                    name = _op_name(factory, None)
                if attempt == 1:
                    log.warning(
                        "store op %s failed for call %s (%s: %s); retrying once",
                        name,
                        self.call_sid,
                        type(exc).__name__,
                        exc,
                    )
                    await asyncio.sleep(self.retry_delay_s)
                    continue
                self.failed += 1
                log.error(
                    "store op %s failed twice for call %s (%s: %s); giving up",
                    name,
                    self.call_sid,
                    type(exc).__name__,
                    exc,
                )
                return
            self.written += 1
            return

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        if not self._overflow_logged:
            self._overflow_logged = True
            log.error(
                "store writer for call %s is dropping writes: %s (further drops not logged)",
                self.call_sid,
                why,
            )
