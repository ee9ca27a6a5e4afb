"""``BackgroundLoop``: a long-lived coroutine of the service with one owner and a name
(the live-call registry's heartbeat, the control listener, the orphan reaper); and
``raise_if_cancelling`` for loops that catch errors and retry."""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar

#: How often (s) ``BackgroundLoop.stop`` cancels again a loop that has not ended.
RECANCEL_S = 0.5


class BackgroundLoop:
    """Runs ``_run()`` as one named task between ``start()`` and ``stop()``.

    A subclass sets ``task_name`` and implements ``_run`` (a loop that runs until
    cancelled); ``stop`` cancels it and waits for it to finish."""

    task_name: ClassVar[str]
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the loop (once; a running loop is left as it is)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has finished. A cancellation the loop lost (a
        library turned it into an error its ``except`` retried) is sent again every
        ``RECANCEL_S`` until the task ends, so a shutdown never waits on it forever."""
        task, self._task = self._task, None
        if task is None:
            return
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=RECANCEL_S)
        with contextlib.suppress(asyncio.CancelledError):
            await task


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library turned into another error (redis-py can
    answer a cancelled blocking read with a connection error): a loop that catches
    errors must still stop when its task is cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
