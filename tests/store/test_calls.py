"""CallStore against real Redis: round trips, masking, TTLs, usage, atomic writes."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from app.errors import StoreError
from app.phone import mask
from app.store.calls import CallStore
from app.store.keys import Keys, phone_hash
from app.store.redis import create_redis

CALLER = "+15555550123"
CALLED = "+15550100000"
RETENTION_S = 3600


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    return Keys(redis_prefix)


@pytest.fixture
def store(redis_client: aioredis.Redis, keys: Keys) -> CallStore:
    return CallStore(redis_client, keys, RETENTION_S)


async def _create(store: CallStore, sid: str = "CA1", created_at_ms: int = 1_000_000) -> None:
    await store.create_call(
        call_sid=sid,
        direction="inbound",
        from_number=CALLER,
        to_number=CALLED,
        flow="support",
        status="ringing",
        created_at_ms=created_at_ms,
        extra={"campaign": "spring", "stream_sid": "MZ1"},
    )


async def _populate(store: CallStore) -> None:
    await _create(store)
    await store.update_call("CA1", status="live", started_at_ms=1_000_500)
    await store.append_transcript(
        "CA1",
        role="user",
        text="where is my order",
        item_id="it1",
        offset_ms=1200,
        interrupted=False,
    )
    await store.append_transcript(
        "CA1",
        role="assistant",
        text="Let me check",
        item_id="it2",
        offset_ms=2500,
        interrupted=True,
    )
    await store.append_routing(
        "CA1", flow="support", reason="number_match", target=CALLED, at_ms=1_000_001
    )
    await store.append_tool_call(
        "CA1",
        name="get_order_status",
        call_id="fc1",
        arguments='{"order_id":"1042"}',
        result={"ok": True, "status": "shipped"},
        error=None,
        duration_ms=12.5,
        at_ms=1_000_900,
    )
    await store.append_status("CA1", status="live", at_ms=1_000_500, extra={"by": "carrier"})
    await store.append_event(
        "CA1",
        kind="realtime_reconnected",
        fields={"reconnect_ms": 840, "target": CALLED},
        at_ms=4200,
    )
    await store.append_tool_call(
        "CA1",
        name="lookup_customer",
        call_id="fc2",
        arguments=f'{{"phone":"{CALLER}"}}',
        result={"ok": True, "found": False, "echo": CALLER},
        error=None,
        duration_ms=1,
        at_ms=1_000_950,
    )


async def test_call_round_trip(store: CallStore) -> None:
    await _populate(store)
    call = await store.get_call("CA1")
    assert call is not None
    assert call["call_sid"] == "CA1"
    assert call["from_masked"] == mask(CALLER) == "+155****0123"
    assert call["to_masked"] == mask(CALLED)
    assert call["from_hash"] == phone_hash(CALLER)
    assert call["to_hash"] == phone_hash(CALLED)
    assert call["status"] == "live"
    assert call["flow"] == "support"
    assert call["campaign"] == "spring"
    assert call["stream_sid"] == "MZ1"
    assert call["created_at_ms"] == 1_000_000
    assert call["started_at_ms"] == 1_000_500
    assert call["responses"] == 0 and call["total_tokens"] == 0

    lines = await store.transcript("CA1")
    assert [(t["role"], t["text"], t["offset_ms"], t["interrupted"]) for t in lines] == [
        ("user", "where is my order", 1200, False),
        ("assistant", "Let me check", 2500, True),
    ]
    assert lines[0]["item_id"] == "it1"

    routing = await store.routing("CA1")
    assert routing == [
        {
            "id": routing[0]["id"],
            "flow": "support",
            "reason": "number_match",
            "target": mask(CALLED),
            "at_ms": 1_000_001,
        }
    ]
    tools = await store.tool_calls("CA1")
    assert len(tools) == 2
    assert tools[1]["arguments"] == '{"phone":"+155****0123"}'
    assert tools[1]["result"]["echo"] == "+155****0123"
    assert tools[0]["result"] == {"ok": True, "status": "shipped"}
    assert tools[0]["error"] is None
    assert tools[0]["duration_ms"] == 12.5
    assert tools[0]["arguments"] == '{"order_id":"1042"}'
    statuses = await store.statuses("CA1")
    assert statuses[0]["status"] == "live" and statuses[0]["at_ms"] == 1_000_500
    assert statuses[0]["by"] == "carrier"
    (event,) = await store.events("CA1")
    assert event == {
        "id": event["id"],
        "kind": "realtime_reconnected",
        "at_ms": 4200,
        "reconnect_ms": "840",
        "target": mask(CALLED),
    }
    assert await store.recent_calls() == ["CA1"]


async def test_unknown_call_reads_empty(store: CallStore) -> None:
    assert await store.get_call("nope") is None
    assert await store.transcript("nope") == []
    assert await store.tool_calls("nope") == []


async def test_raw_number_never_stored(
    store: CallStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    await _populate(store)
    numbers = [CALLER.lstrip("+"), CALLED.lstrip("+")]
    keys = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) >= 5
    for key in keys:
        assert not any(n in key for n in numbers)
        kind = await redis_client.type(key)
        if kind == "hash":
            blob = repr(await redis_client.hgetall(key))
        elif kind == "stream":
            blob = repr(await redis_client.xrange(key))
        elif kind == "zset":
            blob = repr(await redis_client.zrange(key, 0, -1, withscores=True))
        else:
            blob = repr(await redis_client.get(key))
        assert not any(n in blob for n in numbers), (key, blob)


async def test_raw_number_fields_refused(store: CallStore) -> None:
    await _create(store)
    with pytest.raises(StoreError):
        await store.update_call("CA1", from_number=CALLER)
    with pytest.raises(StoreError):
        await store.append_event("CA1", kind="x", fields={"caller": CALLER}, at_ms=1)
    with pytest.raises(StoreError):
        await store.append_event("CA1", kind="x", fields={"kind": "y"}, at_ms=1)
    with pytest.raises(StoreError):
        await store.append_status("CA1", status="x", at_ms=1, extra={"caller": CALLER})


async def test_every_key_has_retention_ttl(
    store: CallStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await _populate(store)
    for key in keys.call_keys("CA1"):
        ttl = await redis_client.ttl(key)
        assert RETENTION_S - 5 <= ttl <= RETENTION_S, (key, ttl)
    # A later write refreshes the TTL.
    await redis_client.expire(keys.call("CA1"), 10)
    await store.append_transcript(
        "CA1", role="user", text="hi", item_id="i", offset_ms=1, interrupted=False
    )
    assert await redis_client.ttl(keys.call("CA1")) > 10


async def test_usage_accumulates(store: CallStore) -> None:
    await _create(store)
    usage = {
        "total_tokens": 300,
        "input_tokens": 200,
        "output_tokens": 100,
        "input_token_details": {"text_tokens": 50, "audio_tokens": 150, "cached_tokens": 64},
        "output_token_details": {"text_tokens": 20, "audio_tokens": 80},
    }
    await store.add_usage("CA1", usage)
    await store.add_usage("CA1", usage)
    await store.add_usage("CA1", {"total_tokens": 5, "input_tokens": "junk"})
    call = await store.get_call("CA1")
    assert call is not None
    assert call["total_tokens"] == 605
    assert call["input_tokens"] == 400
    assert call["output_tokens"] == 200
    assert call["input_audio_tokens"] == 300
    assert call["output_audio_tokens"] == 160
    assert call["cached_tokens"] == 128
    assert call["responses"] == 3


async def test_update_none_deletes_and_bool_encodes(store: CallStore) -> None:
    await _create(store)
    await store.update_call("CA1", campaign=None, recorded=True, end_reason="hangup")
    call = await store.get_call("CA1")
    assert call is not None
    assert "campaign" not in call
    assert call["recorded"] == "1"
    assert call["end_reason"] == "hangup"


async def test_by_time_trims_beyond_retention(
    store: CallStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await _create(store, "OLD", created_at_ms=1_000)
    await _create(store, "NEW", created_at_ms=1_000 + RETENTION_S * 1000 + 1)
    assert await redis_client.zrange(keys.calls_by_time_of("NEW"), 0, -1) == ["NEW"]


async def test_non_e164_caller_is_hashed_not_stored(store: CallStore) -> None:
    await store.create_call(
        call_sid="CA2",
        direction="inbound",
        from_number="anonymous",
        to_number=CALLED,
        flow="support",
        status="ringing",
        created_at_ms=1,
    )
    call = await store.get_call("CA2")
    assert call is not None
    assert call["from_masked"] == mask("anonymous")
    assert call["from_hash"] == phone_hash("anonymous")


async def test_redis_failure_is_store_error(keys: Keys) -> None:
    dead = create_redis("redis://127.0.0.1:1/0", connect_timeout_s=0.2, retries=0)
    store = CallStore(dead, keys, RETENTION_S)
    with pytest.raises(StoreError):
        await _create(store)
    with pytest.raises(StoreError):
        await store.get_call("CA1")
    await dead.aclose()
