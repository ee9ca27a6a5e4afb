"""Migration 3 moves keys written before hash tags (the layout of 0.1.0) to their tagged
names: calls (with TTLs), their streams, campaigns and their contacts, the CallSid →
attempt links; the listing indexes are rebuilt in the shards. Re-running changes nothing."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.dialer.store import CampaignStore
from app.store.calls import CallStore
from app.store.keys import Keys
from migrations import m0003_hash_tags

T0 = 1_800_000_000_000


async def _old_layout(r: aioredis.Redis, p: str) -> None:
    """What 0.1.0 wrote for two calls and a campaign with one attempt."""
    for n, sid in enumerate(("CA1", "CA2")):
        await r.hset(
            f"{p}call:{sid}",
            mapping={"call_sid": sid, "direction": "inbound", "flow": "support",
                     "status": "completed", "created_at_ms": T0 + n, "from_hash": "h1",
                     "to_hash": "h2"},
        )  # fmt: skip
        await r.expire(f"{p}call:{sid}", 3600)
        await r.xadd(f"{p}call:{sid}:transcript", {"role": "user", "text": f"hello {n}"})
        await r.zadd(f"{p}calls:by_time", {sid: T0 + n})
        await r.zadd(f"{p}calls:idx:flow:support", {sid: T0 + n})
    await r.set(f"{p}call:CA1:cb:completed:3", "1", ex=600)
    await r.zadd(f"{p}live:calls", {"CA9": T0})
    await r.hset(f"{p}live:call:CA9", mapping={"call_sid": "CA9"})
    spec = '{"name": "old", "flow": "reminder", "from_number": "+15550100000"}'
    campaign = {"id": "cmp_1", "name": "old", "flow": "reminder", "status": "completed",
                "contacts": 1, "created_at_ms": T0, "spec": spec}  # fmt: skip
    await r.hset(f"{p}campaign:cmp_1", mapping=campaign)
    await r.zadd(f"{p}campaigns", {"cmp_1": T0})
    await r.hset(f"{p}campaign:cmp_1:contact:1", mapping={"id": 1, "state": "done"})
    await r.rpush(f"{p}campaign:cmp_1:history:1", "att_1")
    await r.hset(f"{p}attempt:att_1", mapping={"id": "att_1", "campaign": "cmp_1"})
    await r.set(f"{p}attempts:by_call:CA2", "att_1", ex=3600)


async def test_old_keys_move_and_stay_readable(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    await _old_layout(redis_client, redis_prefix)
    await m0003_hash_tags.up(redis_client, keys)
    await m0003_hash_tags.up(redis_client, keys)  # idempotent

    store = CallStore(redis_client, keys, 3600)
    call = await store.get_call("CA1")
    assert call is not None and call["flow"] == "support"
    assert 0 < await redis_client.ttl(keys.call("CA1")) <= 3600  # the TTL came along
    assert [t["text"] for t in await store.transcript("CA2")] == ["hello 1"]
    assert await redis_client.exists(keys.call("CA1") + ":cb:completed:3")
    assert await store.recent_calls() == ["CA2", "CA1"]
    found, _ = await store.query_calls(filters={"flow": "support"})
    assert [c["call_sid"] for c in found] == ["CA2", "CA1"]

    campaigns = CampaignStore(redis_client, keys)
    assert (await campaigns.get("cmp_1")).spec.name == "old"
    assert (await campaigns.contact("cmp_1", "1"))["state"] == "done"
    assert [a["id"] for a in await campaigns.contact_attempts("cmp_1", "1")] == ["att_1"]
    assert await campaigns.attempt_for_call("CA2") == "att_1"

    left = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}*")]
    untagged = [k for k in left if "{" not in k]
    assert sorted(untagged) == sorted(
        [f"{redis_prefix}campaigns", f"{redis_prefix}attempt:att_1"]  # kept as they were
    )
