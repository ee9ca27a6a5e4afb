"""Index calls stored before the admin listing indexes existed (``calls:idx:*``)."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from app.store.calls import CallStore
from app.store.keys import Keys

VERSION = 2
DESCRIPTION = "backfill calls:idx:* filter indexes for calls stored before they existed"

log = logging.getLogger(__name__)


async def up(redis: aioredis.Redis, keys: Keys) -> None:
    """Run ``CallStore.backfill_indexes`` (idempotent; skips expired records).

    The retention passed here only bounds index trimming; records keep their own TTLs.
    """
    store = CallStore(redis, keys, retention_s=365 * 86400)
    indexed = await store.backfill_indexes()
    log.info("indexed %d stored call(s)", indexed)
