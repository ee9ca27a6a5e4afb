"""``SearchWorker``: the ``search`` consumer group on the events stream: indexes each
call's transcript when its ``call.ended`` comes (once its record says ``ended`` or it
is live nowhere, like the analysis), and acknowledges the event when the index holds
it. Other event types are acknowledged at once."""

from __future__ import annotations

import asyncio
import logging

from app.events.call_ended import ended_call_sid, until_ended
from app.events.consumer import StreamConsumer
from app.search.index import SearchIndex
from app.settings import Settings
from app.store.event_keys import GROUP_SEARCH

log = logging.getLogger(__name__)


class SearchWorker:
    def __init__(self, index: SearchIndex, settings: Settings, consumer: str) -> None:
        self.index = index
        self.wait_s = settings.analysis_wait_ms / 1000
        self.max_wait_s = settings.analysis_timeout_ms / 1000
        self.stop_grace_s = settings.events_stop_grace_ms / 1000
        self._runner: asyncio.Task[None] | None = None
        self.consumer = StreamConsumer(
            index.redis,
            stream=index.keys.events,
            group=GROUP_SEARCH,
            consumer=consumer,
            handler=self._handle,
            block_ms=settings.events_poll_ms,
            claim_idle_ms=settings.events_claim_idle_ms,
        )

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self.consumer.run(), name="search:consumer")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait([self._runner], timeout=self.stop_grace_s)
            self._runner = None

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        call_sid = await ended_call_sid(self.consumer, entry_id, fields, "search")
        if call_sid is None:
            return
        await until_ended(
            self.index.store, call_sid, max_wait_s=self.max_wait_s, poll_s=self.wait_s
        )
        words = await self.index.index_call(call_sid)
        log.info("call %s indexed for search: %d word(s)", call_sid, words)
        await self.consumer.ack(entry_id)
