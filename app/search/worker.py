"""``SearchWorker``: the ``search`` consumer group on the events stream: indexes each
call's transcript when its ``call.ended`` comes (once its record says ``ended`` or it
is live nowhere, like the analysis), and acknowledges the event when the index holds
it. Other event types are acknowledged at once."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from app.errors import StoreError
from app.events.bus import Event
from app.events.consumer import StreamConsumer
from app.search.index import SearchIndex
from app.settings import Settings
from app.store.event_keys import GROUP_SEARCH
from app.store.keys import Keys

log = logging.getLogger(__name__)


class SearchWorker:
    def __init__(self, index: SearchIndex, settings: Settings, consumer: str) -> None:
        self.index = index
        self.wait_s = settings.analysis_wait_ms / 1000
        self.max_wait_s = settings.analysis_timeout_ms / 1000
        self.keys = Keys(settings.redis_prefix)
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
            await asyncio.wait([self._runner], timeout=5)
            self._runner = None

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        if fields.get("type") != "call.ended":
            await self.consumer.ack(entry_id)
            return
        try:
            event = Event.from_fields(entry_id, fields)
        except ValueError as exc:
            log.error("search: skipping %s", exc)
            await self.consumer.ack(entry_id)
            return
        call_sid = str(event.data.get("call_sid", ""))
        if event.data.get("outcome") != "no_stream":
            await self._until_ended(call_sid)
            words = await self.index.index_call(call_sid)
            log.info("call %s indexed for search: %d word(s)", call_sid, words)
        await self.consumer.ack(entry_id)

    async def _until_ended(self, call_sid: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while loop.time() < deadline:
            record = await self.index.store.get_call(call_sid)
            if record is None or record.get("status") == "ended":
                return
            try:
                if not await self.index.redis.exists(self.keys.live_call(call_sid)):
                    return
            except RedisError as exc:
                raise StoreError(f"live-call check failed: {exc}") from exc
            await asyncio.sleep(self.wait_s)
