"""Calls nobody will end: claiming dead registry entries and closing their records.

The instance bridging a call ends its record (``status=ended``, ``end_reason``,
``ended_at_ms``). When it dies its live-registry entries (``Keys.live_calls``, one set
per shard, scored by heartbeat deadline; ``app.admin.live``) stop being refreshed.
``claim_expired`` takes the entries whose deadline passed out of the registry,
atomically, so each is claimed by one instance only; ``close_if_open`` then ends the
record unless it had ended. The loop that runs them on every instance is
``app.admin.reaper.OrphanReaper``.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from app.errors import StoreError
from app.store.calls import CallStore
from app.store.keys import CALL_SHARD_TAGS, call_shard

#: Claim registry entries whose heartbeat deadline passed. KEYS[1] a shard's live calls.
#: ARGV[1] cutoff (epoch ms: members scored below it), ARGV[2] most to claim.
#: Returns the claimed call SIDs (removed from the zset).
_CLAIM_LUA = """
local sids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
for _, sid in ipairs(sids) do redis.call('ZREM', KEYS[1], sid) end
return sids
"""

#: Close a call left open by an instance that died, unless it has ended. KEYS[1] call hash,
#: KEYS[2] the status index of ARGV[7] (KEYS[1] for none), KEYS[3] the ``status:ended``
#: index (all in the call's shard). ARGV[1] call_sid, ARGV[2] (unused), ARGV[3]
#: retention_s, ARGV[4] oldest_ms (index trim bound), ARGV[5] end_reason, ARGV[6]
#: ended_at_ms, ARGV[7] the status read just before ("" none). A reason the call already
#: has is kept. Returns 1 closed, 0 it had ended, -1 no such call (nothing written), -2 the
#: status changed since it was read (nothing written).
_CLOSE_LUA = """
local created = redis.call('HGET', KEYS[1], 'created_at_ms')
if not created then return -1 end
if redis.call('HEXISTS', KEYS[1], 'ended_at_ms') == 1 then return 0 end
local old = redis.call('HGET', KEYS[1], 'status')
if old == 'ended' then return 0 end
if (old or '') ~= ARGV[7] then return -2 end
if old then redis.call('ZREM', KEYS[2], ARGV[1]) end
local k = KEYS[3]
redis.call('ZADD', k, created, ARGV[1])
redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. ARGV[4])
redis.call('EXPIRE', k, ARGV[3])
redis.call('HSETNX', KEYS[1], 'end_reason', ARGV[5])
redis.call('HSET', KEYS[1], 'status', 'ended', 'ended_at_ms', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

#: The end reason of a call whose instance died.
INSTANCE_LOST = "instance lost"


async def claim_expired(store: CallStore, *, cutoff_ms: int, limit: int) -> list[str]:
    """Take up to ``limit`` live-registry entries whose heartbeat deadline is before
    ``cutoff_ms`` (epoch ms) out of the registry; returns their call SIDs (each SID is
    returned to one caller only), shard after shard. Raises ``StoreError``."""
    claimed: list[str] = []
    try:
        # One pipelined look at every shard (cheap reads, one round trip), then the
        # claiming script only where something expired.
        async with store.redis.pipeline(transaction=False) as pipe:
            for shard in CALL_SHARD_TAGS:
                pipe.zrangebyscore(
                    store.keys.live_calls(shard), "-inf", f"({cutoff_ms}", start=0, num=1
                )
            peeks = await pipe.execute()
        for shard, peek in zip(CALL_SHARD_TAGS, peeks, strict=True):
            if len(claimed) >= limit:
                break
            if not peek:
                continue
            sids = await store.redis.eval(
                _CLAIM_LUA, 1, store.keys.live_calls(shard), cutoff_ms, limit - len(claimed)
            )
            claimed += [str(s) for s in sids]
    except RedisError as exc:
        raise StoreError(f"claiming expired live calls failed: {exc}") from exc
    return claimed


async def stale_in_progress(store: CallStore, *, created_before_ms: int, limit: int) -> list[str]:
    """Up to ``limit`` SIDs of calls listed ``status=in-progress`` and created before
    ``created_before_ms`` (epoch ms), oldest first (every shard's index, merged). Raises
    ``StoreError``."""
    try:
        async with store.redis.pipeline(transaction=False) as pipe:
            for shard in CALL_SHARD_TAGS:
                pipe.zrangebyscore(
                    store.keys.call_index("status", "in-progress", shard),
                    "-inf",
                    f"({created_before_ms}",
                    start=0,
                    num=max(1, limit),
                    withscores=True,
                )
            shards = await pipe.execute()
    except RedisError as exc:
        raise StoreError(f"listing in-progress calls failed: {exc}") from exc
    found = sorted((score, str(sid)) for rows in shards for sid, score in rows)
    return [sid for _, sid in found[: max(1, limit)]]


async def close_if_open(
    store: CallStore, call_sid: str, *, ended_at_ms: int, end_reason: str = INSTANCE_LOST
) -> int:
    """End a call nobody will end any more: ``status=ended``, ``ended_at_ms`` (epoch ms)
    and ``end_reason`` (unless the record has one), moved to the ``status:ended`` listing
    index, atomically. Returns 1 closed, 0 it had already ended, -1 no such call (nothing
    written). Raises ``StoreError``."""
    keys, shard = store.keys, call_shard(call_sid)
    record = keys.call(call_sid)
    try:
        for _ in range(5):  # again if the status changed between the read and the script
            old = str(await store.redis.hget(record, "status") or "")
            args: list[str | int] = [
                call_sid,
                "",
                store.retention_s,
                ended_at_ms - store.retention_s * 1000,
                end_reason,
                ended_at_ms,
                old,
            ]
            result = int(
                await store.redis.eval(
                    _CLOSE_LUA,
                    3,
                    record,
                    keys.call_index("status", old, shard) if old else record,
                    keys.call_index("status", "ended", shard),
                    *args,
                )
            )
            if result != -2:
                return result
    except RedisError as exc:
        raise StoreError(f"closing call {call_sid} failed: {exc}") from exc
    raise StoreError(f"closing call {call_sid}: its status kept changing")
