"""Claiming dead live-registry entries and closing their calls' records (real Redis)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from app.store.calls import CallStore
from app.store.keys import CALL_SHARD_TAGS, Keys
from app.store.orphans import claim_expired, close_if_open, stale_in_progress


@pytest.fixture
def store(redis_client: aioredis.Redis, redis_prefix: str) -> CallStore:
    return CallStore(redis_client, Keys(redis_prefix), 3600)


def _now() -> int:
    return time.time_ns() // 1_000_000


async def _call(store: CallStore, sid: str, created_ms: int, status: str = "in-progress") -> None:
    await store.create_call(
        call_sid=sid,
        direction="inbound",
        from_number="+15555550123",
        to_number="+15550100000",
        flow="support",
        status=status,
        created_at_ms=created_ms,
    )


async def test_each_expired_entry_is_claimed_by_one_claimer(store: CallStore) -> None:
    now = _now()
    expired = {f"CA{n:032d}": now - 1000 - n for n in range(60)}
    for sid, deadline in {**expired, "CAlive": now + 5000}.items():  # each in its shard
        await store.redis.zadd(store.keys.live_calls_of(sid), {sid: deadline})
    claims = await asyncio.gather(
        *(claim_expired(store, cutoff_ms=now, limit=25) for _ in range(8))
    )
    claimed = [sid for batch in claims for sid in batch]
    assert len(claimed) == len(set(claimed))  # nobody claimed an entry twice
    rest = await claim_expired(store, cutoff_ms=now, limit=100)
    assert sorted(claimed + rest) == sorted(expired)
    left = [await store.redis.zrange(store.keys.live_calls(s), 0, -1) for s in CALL_SHARD_TAGS]
    assert [sid for found in left for sid in found] == ["CAlive"]


async def test_close_if_open_ends_an_open_call_once(store: CallStore) -> None:
    now = _now()
    await _call(store, "CA1", now - 60_000)
    assert await close_if_open(store, "CA1", ended_at_ms=now) == 1
    record = await store.get_call("CA1")
    assert record is not None
    assert (record["status"], record["end_reason"], record["ended_at_ms"]) == (
        "ended",
        "instance lost",
        now,
    )
    found, _ = await store.query_calls(filters={"status": "ended"})
    assert [c["call_sid"] for c in found] == ["CA1"]
    assert (await store.query_calls(filters={"status": "in-progress"}))[0] == []
    assert await close_if_open(store, "CA1", ended_at_ms=now + 5) == 0
    assert (await store.get_call("CA1") or {})["ended_at_ms"] == now
    assert await close_if_open(store, "CAnone", ended_at_ms=now) == -1
    assert await store.redis.exists(store.keys.call("CAnone")) == 0


async def test_close_if_open_keeps_what_the_call_recorded(store: CallStore) -> None:
    now = _now()
    await _call(store, "CA2", now - 60_000)
    await store.update_call("CA2", end_reason="hangup: caller finished")  # ended_at lost
    assert await close_if_open(store, "CA2", ended_at_ms=now) == 1
    record = await store.get_call("CA2")
    assert record is not None
    assert (record["status"], record["end_reason"]) == ("ended", "hangup: caller finished")
    await _call(store, "CA3", now - 60_000)
    await store.update_call("CA3", status="ended", ended_at_ms=now - 10)
    assert await close_if_open(store, "CA3", ended_at_ms=now) == 0


async def test_stale_in_progress_lists_only_old_in_progress_calls(store: CallStore) -> None:
    now = _now()
    await _call(store, "CAold", now - 600_000)
    await _call(store, "CAnew", now - 1_000)
    await _call(store, "CAring", now - 600_000, status="ringing")
    assert await stale_in_progress(store, created_before_ms=now - 60_000, limit=10) == ["CAold"]
