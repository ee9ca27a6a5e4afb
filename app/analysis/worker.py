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

from redis.exceptions import RedisError

from app.analysis.service import AnalysisService
from app.errors import StoreError
from app.events.bus import Event
from app.events.consumer import StreamConsumer
from app.store.event_keys import GROUP_ANALYSIS, EventKeys
from app.store.keys import Keys

log = logging.getLogger(__name__)

#: How long a stopping worker lets analyses in flight finish (s).
STOP_GRACE_S = 5.0


class AnalysisWorker:
    def __init__(self, service: AnalysisService, consumer: str) -> None:
        settings = service.settings
        self.service = service
        self.concurrency = settings.analysis_concurrency
        self.wait_s = settings.analysis_wait_ms / 1000
        self.max_wait_s = settings.analysis_timeout_ms / 1000
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
        """Stop taking events; analyses in flight get ``STOP_GRACE_S`` to finish, the rest
        are cancelled (their events stay pending: another instance, or this one after a
        restart, takes them over after ``events_claim_idle_ms``)."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait([self._runner], timeout=5)
            self._runner = None
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _free(self) -> int:
        return self.concurrency - len(self._tasks)

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        if fields.get("type") != "call.ended":
            await self.consumer.ack(entry_id)
            return
        try:
            event = Event.from_fields(entry_id, fields)
        except ValueError as exc:
            log.error("analysis: skipping %s", exc)
            await self.consumer.ack(entry_id)
            return
        call_sid = str(event.data.get("call_sid", ""))
        if event.data.get("outcome") == "no_stream":  # no media stream: nothing was said
            await self.consumer.ack(entry_id)
            return
        task = asyncio.create_task(self._analyse(entry_id, call_sid), name=f"analysis:{call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _analyse(self, entry_id: str, call_sid: str) -> None:
        try:
            await self._until_ended(call_sid)
            result = await self.service.run(call_sid)
            if result is not None:
                log.info("call %s analysed: %s", call_sid, result.status)
            await self.consumer.ack(entry_id)
        except StoreError as exc:  # left pending: taken over after events_claim_idle_ms
            log.warning("analysis of %s postponed: %s", call_sid, exc)

    async def _until_ended(self, call_sid: str) -> None:
        """Until the record says ``ended`` or the call is live nowhere (its bridge's last
        writes are in), at most ``analysis_timeout_ms``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        live_key = Keys(self.service.settings.redis_prefix).live_call(call_sid)
        while loop.time() < deadline:
            record = await self.service.store.get_call(call_sid)
            if record is None or record.get("status") == "ended":
                return
            try:
                if not await self.service.redis.exists(live_key):
                    return
            except RedisError as exc:
                raise StoreError(f"live-call check failed: {exc}") from exc
            await asyncio.sleep(self.wait_s)
