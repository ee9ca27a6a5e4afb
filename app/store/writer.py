"""Per-call store writer: keeps Redis off the audio path, and rides out Redis outages.

The call ``submit()``s zero-argument factories of awaitables, normally the ``WriteOp``s
of the call's ``app.store.recorder.CallRecorder`` (``writer.recorder``), which are safe
to retry and write the record again if Redis lost it. ``run()`` (a task of the call)
awaits them one at a time, in order: the op at the head blocks the rest.

A write that fails because Redis cannot be reached (connection refused or lost, timeout,
``LOADING`` after a restart, …) is retried with a backoff from ``retry_delay_s``
doubling to ``retry_max_delay_s`` until Redis answers, for as long as Redis has been
unreachable less than ``outage_s``; past that each op gets one attempt until Redis
answers again. Before the first write after such a failure the recorder reconciles the
record (Redis may be back without the call's data). Any other error is retried once.
A write never ends the call. The queue is bounded: beyond ``max_pending`` ops are
dropped and counted (``dropped``), with one error log per call; ops given up are counted
in ``failed`` (``switchboard_store_failed_total``), the first logged as an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from redis import exceptions as redis_errors

from app import metrics
from app.loops import raise_if_cancelling
from app.store.recorder import CallRecorder, WriteOp

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.calls import CallStore

log = logging.getLogger(__name__)

OpFactory = Callable[[], Awaitable[object]]

#: Error replies meaning "not now" (a Redis restarting, a replica promoted, a failover).
_TRANSIENT_REPLIES = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says Redis is unreachable for now:
    worth retrying until it answers. Bugs and bad data are not."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(
            seen,
            redis_errors.ConnectionError | redis_errors.TimeoutError | OSError | TimeoutError,
        ):
            return True
        if isinstance(seen, redis_errors.ResponseError):
            return str(seen).split(" ", 1)[0] in _TRANSIENT_REPLIES
        seen = seen.__cause__
    return False


def _op_name(factory: OpFactory, awaitable: Awaitable[object] | None) -> str:
    if isinstance(factory, WriteOp):
        return factory.name
    for obj in (awaitable, getattr(factory, "func", None), factory):
        name = getattr(obj, "__qualname__", None)
        if isinstance(name, str) and name != "<lambda>":
            return name
    return repr(factory)


class StoreWriter:
    """Ordered, bounded, non-blocking queue of store writes for one call.

    ``call_sid`` is used in logs only. ``max_pending`` (≥ 1) bounds queued ops
    (``Settings.store_queue_max``). ``retry_delay_s`` / ``retry_max_delay_s`` is the
    backoff between attempts, ``outage_s`` how long Redis may be unreachable before ops
    are given up after one attempt (module docstring). ``recorder``: the call's
    ``CallRecorder``; its ``load()`` becomes the first op. Counters: ``written`` (ops that
    succeeded, retried or not), ``retried`` (attempts repeated), ``failed`` (ops given up),
    ``dropped`` (ops refused because the queue was full or the writer closed, or abandoned
    when ``close`` ran out of time).
    """

    def __init__(
        self,
        call_sid: str,
        *,
        max_pending: int = 10_000,
        retry_delay_s: float = 0.05,
        retry_max_delay_s: float = 1.0,
        outage_s: float = 30.0,
        recorder: CallRecorder | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.call_sid = call_sid
        self.max_pending = max_pending
        self.retry_delay_s = retry_delay_s
        self.retry_max_delay_s = max(retry_delay_s, retry_max_delay_s)
        self.outage_s = outage_s
        self.recorder = recorder
        self.written = 0
        self.retried = 0
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
        #: Loop time of the first failure of the outage under way (None: Redis answers).
        self._down_since: float | None = None
        #: A transient failure happened since the record was last known whole.
        self._unsure = False
        if recorder is not None:
            self._queue.append(recorder.load())

    @classmethod
    def for_call(cls, store: CallStore, call_sid: str, settings: Settings) -> StoreWriter:
        """The writer of a bridged call: a ``CallRecorder`` on ``store`` (``writer.recorder``
        builds its ops) and the limits of ``settings`` (``store_queue_max``,
        ``store_retry_initial_ms``, ``store_retry_max_ms``, ``store_outage_s``,
        ``store_journal_max``)."""
        recorder = CallRecorder(store, call_sid, journal_max=settings.store_journal_max)
        return cls(
            call_sid,
            max_pending=settings.store_queue_max,
            retry_delay_s=settings.store_retry_initial_ms / 1000,
            retry_max_delay_s=settings.store_retry_max_ms / 1000,
            outage_s=settings.store_outage_s,
            recorder=recorder,
        )

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

        ``coro_factory`` is called by ``run()`` for each attempt to get the awaitable (a
        ``WriteOp`` is safe to call again; a plain factory must be too). When the queue
        holds ``max_pending`` ops or the writer is closed the op is dropped and counted.
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
        in flight, retrying through an outage) at the deadline are abandoned, counted in
        ``dropped`` and logged. Never raises on timeout.
        """
        self._closing = True
        self._wake.set()
        inline = False
        try:
            async with asyncio.timeout(timeout_s):
                if self._running:
                    await self._done.wait()
                # Whatever is still queued (run() never started, or was cancelled with
                # its task group) is drained here, in order; a run() starting now waits.
                self._running = inline = True
                while self._queue:
                    factory = self._queue.popleft()
                    self._in_flight = True
                    await self._execute(factory)
                    self._in_flight = False
                self._done.set()
            self._log_summary()
            return
        except TimeoutError:
            pass
        left = len(self._queue)
        self._queue.clear()
        in_flight = self._in_flight
        run_task = self._task
        if not inline and not self._done.is_set() and run_task is not None and not run_task.done():
            self._abandon = True
            run_task.cancel()
            try:
                async with asyncio.timeout(0.5):
                    await self._done.wait()
            except TimeoutError:
                log.error("store writer for call %s did not stop after cancel", self.call_sid)
        self._done.set()
        abandoned = left + (1 if in_flight else 0)
        self.dropped += abandoned
        log.error(
            "store writer for call %s: close deadline %.3fs passed, %d write(s) abandoned",
            self.call_sid,
            timeout_s,
            abandoned,
        )
        self._log_summary()

    async def _execute(self, factory: OpFactory) -> None:
        loop = asyncio.get_running_loop()
        delay = self.retry_delay_s
        attempt = 0
        name = "?"
        while True:
            attempt += 1
            awaitable: Awaitable[object] | None = None
            try:
                if self._unsure and self.recorder is not None:
                    await self._reconcile()
                awaitable = factory()
                name = _op_name(factory, awaitable)
                await awaitable
            except Exception as exc:
                raise_if_cancelling()  # a cancel redis-py turned into an error: no retry
                if awaitable is None:
                    name = _op_name(factory, None)
                if not self._should_retry(exc, attempt, name, loop.time()):
                    self._give_up(name, exc, attempt)
                    return
                self.retried += 1
                metrics.STORE_RETRIES.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_delay_s)
                continue
            self.written += 1
            if self._down_since is not None:
                log.warning(
                    "store for call %s answers again after %.1f s; writing on in order",
                    self.call_sid,
                    loop.time() - self._down_since,
                )
                self._down_since = None
            return

    async def _reconcile(self) -> None:
        """After an outage: let the recorder write back what Redis may have lost. A
        transient failure propagates (the op's attempt failed); any other is logged and
        the writer goes on."""
        assert self.recorder is not None
        try:
            await self.recorder.reconcile()
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("store reconcile for call %s failed: %s", self.call_sid, exc)
        self._unsure = False

    def _should_retry(self, exc: Exception, attempt: int, name: str, now: float) -> bool:
        """Whether to try ``exc``'s op again (logs the start of an outage once)."""
        if not is_transient(exc):
            if attempt == 1:
                log.warning(
                    "store op %s failed for call %s (%s: %s); retrying once",
                    name,
                    self.call_sid,
                    type(exc).__name__,
                    exc,
                )
            return attempt == 1
        self._unsure = True
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "store unreachable for call %s (%s: %s); retrying for up to %.0f s, "
                "%d write(s) waiting",
                self.call_sid,
                type(exc).__name__,
                exc,
                self.outage_s,
                len(self._queue) + 1,
            )
        return now - self._down_since < self.outage_s

    def _give_up(self, name: str, exc: Exception, attempts: int) -> None:
        self.failed += 1
        metrics.STORE_FAILED.inc()
        if self.failed == 1:
            log.error(
                "store op %s for call %s given up after %d attempt(s) (%s: %s); "
                "later ones are counted, not logged",
                name,
                self.call_sid,
                attempts,
                type(exc).__name__,
                exc,
            )

    def _log_summary(self) -> None:
        if self.failed > 1:
            log.error("store writer for call %s gave up %d write(s)", self.call_sid, self.failed)

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        if not self._overflow_logged:
            self._overflow_logged = True
            log.error(
                "store writer for call %s is dropping writes: %s (further drops not logged)",
                self.call_sid,
                why,
            )
