"""``StreamConsumer``: one consumer of a Redis stream's consumer group, run as a task.

Each instance reads new entries (``XREADGROUP … >``) and, before that, takes over
entries another consumer left unacknowledged for ``claim_idle_ms`` (``XAUTOCLAIM``: its
instance died mid-way). The handler acknowledges what it finished (often in the same
``MULTI`` as its own writes, so an entry is done exactly when its effects are stored);
an entry whose handler raised stays pending and is taken over again after
``claim_idle_ms``. Redis being down is logged and retried with a capped back-off; the
loop only ends when its task is cancelled.

Redis Streams, consumer groups: https://redis.io/docs/latest/develop/data-types/streams/
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from app.errors import StoreError
from app.loops import raise_if_cancelling

log = logging.getLogger(__name__)

#: ``handler(entry_id, fields)``; it acknowledges the entry itself (``ack``) when done.
Handler = Callable[[str, dict[str, str]], Awaitable[None]]


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) reading from the start, unless it
    exists. Raises ``StoreError``."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise StoreError(f"consumer group {group} on {stream}: {exc}") from exc
    except RedisError as exc:
        raise StoreError(f"consumer group {group} on {stream}: {exc}") from exc


class StreamConsumer:
    """Feeds ``handler`` the entries of ``stream`` for ``group`` as ``consumer``.

    ``batch``: entries per read; ``slots``: a callable giving how many more entries the
    handler can take now (for handlers that spawn work; None: ``batch``). ``block_ms``:
    how long a read waits on an empty stream. ``delete_acked``: delete entries once
    acknowledged (a stream only this group reads); a stream several groups read is
    trimmed by length instead.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        block_ms: int = 1000,
        claim_idle_ms: int = 120_000,
        batch: int = 16,
        slots: Callable[[], Awaitable[int]] | None = None,
        delete_acked: bool = False,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.slots = slots
        self.delete_acked = delete_acked
        self.handled = 0
        self._claim_from = "0-0"

    def ack_ops(self, pipe: Any, *entry_ids: str) -> None:
        """Queue the acknowledgement of ``entry_ids`` on ``pipe`` (for a ``MULTI`` that
        also stores what handling them produced)."""
        pipe.xack(self.stream, self.group, *entry_ids)
        if self.delete_acked:
            pipe.xdel(self.stream, *entry_ids)

    async def ack(self, *entry_ids: str) -> None:
        """Acknowledge entries now (raises ``StoreError``)."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                self.ack_ops(pipe, *entry_ids)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"ack on {self.stream} failed: {exc}") from exc

    async def run(self) -> None:
        """Consume until cancelled."""
        backoff = 0.1
        ready = False
        while True:
            # A cancellation redis-py swallowed (seen while it connects) still ends the
            # loop, at the next turn, instead of leaving a task that never stops.
            raise_if_cancelling()
            try:
                if not ready:
                    await ensure_group(self.redis, self.stream, self.group)
                    ready = True
                count = await self._free()
                if count <= 0:
                    await asyncio.sleep(0.05)
                    continue
                entries = await self._claimed(count)
                if not entries:
                    entries = await self._read(count)
                for entry_id, fields in entries:
                    await self._handle(entry_id, fields)
                backoff = 0.1
            except (StoreError, RedisError, OSError) as exc:
                raise_if_cancelling()
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    ready = False  # the stream was deleted: recreate the group
                log.warning("consumer %s/%s: %s; retrying", self.stream, self.group, exc)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)

    async def _free(self) -> int:
        if self.slots is None:
            return self.batch
        return min(self.batch, await self.slots())

    async def _claimed(self, count: int) -> list[tuple[str, dict[str, str]]]:
        result: Any = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_from,
            count=count,
        )
        next_id, entries = result[0], result[1]
        self._claim_from = str(next_id) if entries else "0-0"
        claimed = [(str(i), dict(f or {})) for i, f in entries if f is not None]
        if claimed:
            log.warning(
                "consumer %s/%s took over %d unfinished entr%s",
                self.stream,
                self.group,
                len(claimed),
                "y" if len(claimed) == 1 else "ies",
            )
        return claimed

    async def _read(self, count: int) -> list[tuple[str, dict[str, str]]]:
        result: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=count,
            block=self.block_ms,
        )
        out: list[tuple[str, dict[str, str]]] = []
        for _stream, entries in result or []:
            out += [(str(i), dict(f or {})) for i, f in entries]
        return out

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            await self.handler(entry_id, fields)
            self.handled += 1
        except (StoreError, RedisError):
            raise  # left pending; taken over again after claim_idle_ms
        except Exception:
            log.exception("consumer %s/%s: entry %s failed", self.stream, self.group, entry_id)
            with contextlib.suppress(StoreError):
                await self.ack(entry_id)  # a bug must not loop forever on one entry
