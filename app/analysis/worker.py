"""``AnalysisWorker``: the ``analysis`` consumer group on the events stream.

On each ``call.ended`` it waits until the call's record says ``ended`` or the call is
live on no instance (the bridge's last writes are in; at most ``analysis_timeout_ms``,
looking every ``analysis_wait_ms``), then runs ``AnalysisService.run`` in a task of its own, at most
``analysis_concurrency`` at once, and acknowledges the event when the analysis is
stored. An instance that dies mid-way leaves the event pending; another takes it over
after ``events_claim_idle_ms``. Other event types are acknowledged at once.
"""

from __future__ import annotations

import asyncio
import logging

from app.analysis.service import AnalysisService
from app.errors import StoreError
from app.events.call_ended import ended_call_sid, until_ended
from app.events.consumer import StreamConsumer
from app.store.event_keys import GROUP_ANALYSIS, EventKeys

log = logging.getLogger(__name__)


class AnalysisWorker:
    def __init__(self, service: AnalysisService, consumer: str) -> None:
        settings = service.settings
        self.service = service
        self.concurrency = settings.analysis_concurrency
        self.wait_s = settings.analysis_wait_ms / 1000
        self.max_wait_s = settings.analysis_timeout_ms / 1000
        self.stop_grace_s = settings.events_stop_grace_ms / 1000
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self.consumer = StreamConsumer(
            service.redis,
            stream=EventKeys(settings.redis_prefix).events,
            group=GROUP_ANALYSIS,
            consumer=consumer,
            handler=self._handle,
            block_ms=settings.events_poll_ms,
            claim_idle_ms=settings.events_claim_idle_ms,
            batch=self.concurrency,
            slots=self._free,
        )

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self.consumer.run(), name="analysis:consumer")

    async def stop(self) -> None:
        """Stop taking events; analyses in flight get ``events_stop_grace_ms`` to finish, the rest
        are cancelled (their events stay pending: another instance, or this one after a
        restart, takes them over after ``events_claim_idle_ms``)."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait([self._runner], timeout=self.stop_grace_s)
            self._runner = None
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _free(self) -> int:
        return self.concurrency - len(self._tasks)

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        call_sid = await ended_call_sid(self.consumer, entry_id, fields, "analysis")
        if call_sid is None:
            return
        task = asyncio.create_task(self._analyse(entry_id, call_sid), name=f"analysis:{call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _analyse(self, entry_id: str, call_sid: str) -> None:
        try:
            await until_ended(
                self.service.store,
                call_sid,
                max_wait_s=self.max_wait_s,
                poll_s=self.wait_s,
            )
            result = await self.service.run(call_sid)
            if result is not None:
                log.info("call %s analysed: %s", call_sid, result.status)
            await self.consumer.ack(entry_id)
        except StoreError as exc:  # left pending: taken over after events_claim_idle_ms
            log.warning("analysis of %s postponed: %s", call_sid, exc)
