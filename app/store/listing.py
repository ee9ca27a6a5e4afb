"""The call listing over sharded indexes: one bounded Lua walk per shard, merged.

Every call-wide index is split into ``CALL_SHARDS`` shards by ``app.store.keys.call_shard``
(``calls:{c7}:by_time``, ``calls:{c7}:idx:flow:support``, …), each in the slot of its own
hash tag together with the records of its calls, so a call's writes stay one
transaction on a Redis Cluster. A listing asks every shard for its page (the scripts go
out in one pipeline on one Redis, all at once on a Cluster) and merges
them newest first, returning only what every shard has looked at: a shard that stopped
early (its share of the budget spent) holds the page's end back to where it stopped.

Positions are ``(created_at_ms, call_sid)``, ordered by score then member, newest first
(``ZREVRANGE`` order); a page starts strictly after its cursor position.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from app.store.keys import CALL_SHARD_TAGS, Keys
from app.store.redis import is_cluster

#: One page of a filtered listing in one shard. KEYS: the sets to intersect (the shard's
#: ``calls_by_time`` or its filter indexes; all scored by created_at_ms). ARGV: min score,
#: max score, cursor score ("" for none), cursor member, limit, budget. The set with the
#: fewest members in range is walked newest first by rank; the others are checked with
#: ZSCORE. Returns ``{matches (flat member, score...), next_score, next_member}``; next is
#: "" when nothing is left, else the last position examined (budget spent or a further
#: match).
QUERY_LUA = """
local minv, maxv = tonumber(ARGV[1]), tonumber(ARGV[2])
local cs, cm = ARGV[3], ARGV[4]
local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local top = maxv
if cs ~= '' then
  if tonumber(cs) <= maxv then top = tonumber(cs) else cs = '' end
end
local best, bestn = 1, -1
for i = 1, #KEYS do
  local n = redis.call('ZCOUNT', KEYS[i], minv, top)
  if n == 0 then return {{}, '', ''} end
  if bestn < 0 or n < bestn then best, bestn = i, n end
end
local primary = KEYS[best]
local rank = redis.call('ZCOUNT', primary, '(' .. string.format('%d', top), '+inf')
local out, examined, last_s, last_m = {}, 0, '', ''
local batch = 256
while true do
  local rows = redis.call('ZREVRANGE', primary, rank, rank + batch - 1, 'WITHSCORES')
  if #rows == 0 then return {out, '', ''} end
  for i = 1, #rows, 2 do
    local m, s = rows[i], rows[i + 1]
    local sv = tonumber(s)
    if sv < minv then return {out, '', ''} end
    if not (cs ~= '' and sv == tonumber(cs) and m >= cm) and sv <= top then
      if examined >= budget then return {out, last_s, last_m} end
      examined = examined + 1
      local ok = true
      for k = 1, #KEYS do
        if k ~= best and not redis.call('ZSCORE', KEYS[k], m) then ok = false; break end
      end
      if ok then
        if #out >= 2 * limit then return {out, last_s, last_m} end
        out[#out + 1] = m
        out[#out + 1] = s
      end
      last_s, last_m = s, m
    end
  end
  rank = rank + batch
end
"""

Position = tuple[int, str]


def _at_or_above(item: Position, bound: Position) -> bool:
    """``item`` comes before or at ``bound`` in the listing (newest first)."""
    return item[0] > bound[0] or (item[0] == bound[0] and item[1] >= bound[1])


QUERY_SHA = hashlib.sha1(QUERY_LUA.encode()).hexdigest()


async def query_shards(
    redis: aioredis.Redis,
    shard_keys: Sequence[Sequence[str]],
    *,
    since_ms: int | None,
    until_ms: int | None,
    after: Position | None,
    limit: int,
    budget: int,
) -> tuple[list[Position], Position | None]:
    """One merged page: ``(positions newest first, next position or None)``.

    ``shard_keys[i]``: the sets to intersect in shard ``i`` (all in its slot). Each shard
    examines at most ``ceil(budget / shards)`` candidates, so the page's work is bounded
    by ``budget`` (plus one per shard) whatever the number of calls. Raises
    ``redis.exceptions.RedisError``.
    """
    limit = max(1, limit)
    per_shard = max(1, math.ceil(max(1, budget) / max(1, len(shard_keys))))
    args: list[str | int] = [
        since_ms if since_ms is not None else 0,
        until_ms if until_ms is not None else 2**53 - 1,
        str(after[0]) if after else "",
        after[1] if after else "",
        limit,
        per_shard,
    ]

    async def run() -> list[Any]:
        if is_cluster(redis):  # no scripts in a cluster pipeline: each node's at once
            return list(
                await asyncio.gather(
                    *(redis.evalsha(QUERY_SHA, len(keys), *keys, *args) for keys in shard_keys)
                )
            )
        async with redis.pipeline(transaction=False) as pipe:
            for keys in shard_keys:
                pipe.evalsha(QUERY_SHA, len(keys), *keys, *args)
            return list(await pipe.execute())

    try:
        replies = await run()
    except NoScriptError:  # a node that never saw it, or restarted: load it (everywhere)
        await redis.script_load(QUERY_LUA)
        replies = await run()
    items: list[Position] = []
    frontier: Position | None = None  # the least advanced shard that is not done
    for rows, next_score, next_member in replies:
        items += [(int(float(rows[i + 1])), str(rows[i])) for i in range(0, len(rows), 2)]
        if next_score:
            stop = (int(float(next_score)), str(next_member))
            if frontier is None or _at_or_above(stop, frontier):
                frontier = stop
    if frontier is not None:
        items = [i for i in items if _at_or_above(i, frontier)]
    items.sort(reverse=True)
    if len(items) > limit:
        return items[:limit], items[limit - 1]
    return items, frontier


async def recent(
    redis: aioredis.Redis, keys: Keys, *, limit: int, before_ms: int | None
) -> list[str]:
    """The newest ``limit`` call SIDs created before ``before_ms`` (all shards merged)."""
    top: str | int = f"({before_ms}" if before_ms is not None else "+inf"
    async with redis.pipeline(transaction=False) as pipe:
        for shard in CALL_SHARD_TAGS:
            pipe.zrevrangebyscore(
                keys.calls_by_time(shard), top, "-inf", start=0, num=limit, withscores=True
            )
        replies: list[list[tuple[str, float]]] = await pipe.execute()
    merged = sorted(
        ((int(score), str(sid)) for rows in replies for sid, score in rows), reverse=True
    )
    return [sid for _, sid in merged[:limit]]
