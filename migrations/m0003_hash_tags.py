"""Move keys stored before hash tags to their tagged names (``app/store/keys.py``).

Calls, their streams and markers (``{p}call:{sid}…``) move to ``{p}call:{{shard}}:{sid}…``,
their attempt links to ``{p}attempts:by_call:{{sid}}``, every key of a campaign
(``{p}campaign:{cid}…``) to ``{p}campaign:{{cid}}…``; the old ``calls:by_time`` set is
split into its 64 shards and the listing indexes rebuilt in them
(``CallStore.backfill_indexes``); the live registry's old entries are dropped (every
instance writes its live calls again within a heartbeat). ``RENAME`` keeps each key's TTL.
Attempts stored before keep their names (``Keys.attempt`` of an id without a campaign).
Tokens are left to expire (30 s). Safe to re-run: a tagged key is never renamed again.

Stop every instance of the old version before migrating (they write the old names). On
a Redis Cluster there is nothing to move: the old names never ran on one.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.redis import is_cluster

VERSION = 3
DESCRIPTION = "move calls and campaigns to hash-tagged key names; shard the call indexes"

log = logging.getLogger(__name__)


def _renamed(key: str, keys: Keys) -> str | None:
    """The tagged name of an old-style ``key``, or None (already tagged, or not ours)."""
    rest = key[len(keys.prefix) :]
    if "{" in rest or "}" in rest:
        return None
    kind, _, tail = rest.partition(":")
    ident, sep, suffix = tail.partition(":")
    if not ident:
        return None
    suffix = sep + suffix
    if kind == "call":
        return keys.call(ident) + suffix
    if kind == "campaign":
        return keys.campaign(ident) + suffix
    if kind == "attempts" and ident == "by_call" and suffix:
        return keys.attempt_by_call(suffix[1:])
    return None


async def up(redis: aioredis.Redis, keys: Keys) -> None:
    if is_cluster(redis):
        log.info("a Redis Cluster holds no untagged keys: nothing to move")
        return
    moved = 0
    for pattern in ("call:*", "campaign:*", "attempts:by_call:*"):
        async for key in redis.scan_iter(match=keys.prefix + pattern, count=1000):
            new = _renamed(str(key), keys)
            if new is not None and new != key:
                await redis.rename(key, new)
                moved += 1
    old_by_time = keys.prefix + "calls:by_time"
    cursor = 0
    while True:
        cursor, rows = await redis.zscan(old_by_time, cursor, count=1000)
        if rows:
            async with redis.pipeline(transaction=False) as pipe:
                for sid, score in rows:
                    pipe.zadd(keys.calls_by_time_of(str(sid)), {str(sid): float(score)})
                await pipe.execute()
        if cursor == 0:
            break
    dropped = [old_by_time, keys.prefix + "live:calls"]
    for pattern in ("calls:idx:*", "live:call:*"):
        async for key in redis.scan_iter(match=keys.prefix + pattern, count=1000):
            if "{" not in str(key):
                dropped.append(str(key))
    for start in range(0, len(dropped), 500):
        await redis.delete(*dropped[start : start + 500])
    store = CallStore(redis, keys, retention_s=365 * 86400)
    indexed = await store.backfill_indexes()
    log.info("moved %d key(s) to hash-tagged names; indexed %d call(s)", moved, indexed)
