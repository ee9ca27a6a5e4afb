"""The call store on the real Redis Cluster: records, streams, tokens, the sharded
listing (every shard's walk merged), status callbacks, the CRM and the do-not-call list.
The single-Redis tests run again here, unchanged, against ``redis+cluster://``."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.admin.dnc import DncList, is_blocked
from app.store.calls import CallStore
from app.store.keys import Keys, call_shard
from app.store.redis import is_cluster
from tests.store.test_calls import (  # noqa: F401  (run again, here on the cluster)
    keys,
    store,
    test_by_time_trims_beyond_retention,
    test_call_round_trip,
    test_every_key_has_retention_ttl,
    test_non_e164_caller_is_hashed_not_stored,
    test_raw_number_never_stored,
    test_update_none_deletes_and_bool_encodes,
    test_usage_accumulates,
)
from tests.store.test_tokens import (  # noqa: F401
    test_one_token_per_call_ever,
    test_token_bound_to_its_call,
    test_token_is_one_time_and_carries_the_context,
)

T0 = 1_800_000_000_000


async def test_calls_spread_over_the_nodes_and_list_merged(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    assert is_cluster(redis_client)
    k = Keys(redis_prefix)
    calls = CallStore(redis_client, k, 3600)
    sids = [f"CA{n:032x}" for n in range(60)]
    for n, sid in enumerate(sids):
        await calls.create_call(
            call_sid=sid,
            direction="inbound" if n % 2 else "outbound-api",
            from_number="+15555550123",
            to_number="+15550100000",
            flow="support" if n % 3 else "sales",
            status="ringing",
            created_at_ms=T0 + n,
        )
    nodes = {redis_client.get_node_from_key(k.call(s)).name for s in sids}  # type: ignore[attr-defined]
    assert len(nodes) == 3 and len({call_shard(s) for s in sids}) > 20
    assert await calls.recent_calls(limit=5) == sids[::-1][:5]

    # Filtered, paged with a small budget: every match once, newest first.
    want = [s for n, s in enumerate(sids) if n % 2 and n % 3][::-1]
    found: list[str] = []
    after = None
    for _ in range(100):
        page, after = await calls.query_calls(
            filters={"direction": "inbound", "flow": "support"}, after=after, limit=4, budget=40
        )
        found += [c["call_sid"] for c in page]
        if after is None:
            break
    assert found == want

    # An update moves the call between its shard's status indexes in one script.
    for sid in sids[:10]:
        await calls.update_call(sid, status="completed")
    done, _ = await calls.query_calls(filters={"status": "completed"}, limit=50)
    assert sorted(c["call_sid"] for c in done) == sorted(sids[:10])
    ringing, _ = await calls.query_calls(filters={"status": "ringing"}, limit=50)
    assert not {c["call_sid"] for c in ringing} & set(sids[:10])
    assert await calls.apply_carrier_status(sids[0], "completed", seq=3, at_ms=None) == 1
    assert await calls.apply_carrier_status(sids[0], "ringing", seq=2, at_ms=None) == 0


async def test_the_do_not_call_list(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    k = Keys(redis_prefix)
    dnc = DncList(redis_client, k)
    await dnc.add("+15555550123", reason="asked", added_by="test")
    assert await is_blocked(redis_client, k, "+15555550123")
    assert await dnc.remove("+15555550123")
    assert not await is_blocked(redis_client, k, "+15555550123")
