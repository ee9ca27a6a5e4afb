"""Warm-transfer hand-offs against real Redis: steps and the outcome are claimed once, and
nothing is written to a hand-off that has expired."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.store.handoffs import Handoff, Handoffs
from app.store.keys import Keys
from app.store.tokens import StreamContext


def _handoff(call_sid: str = "CA1") -> Handoff:
    ctx = StreamContext(
        call_sid=call_sid,
        flow="support",
        direction="inbound",
        from_number="+15555550123",
        to_number="+15550100000",
    )
    return Handoff(ctx, "+15550109999", "support", "Caller asks about order 1042.", "*")


async def test_steps_and_the_outcome_are_claimed_once(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    handoffs = Handoffs(redis_client, Keys(redis_prefix), ttl_s=60)
    await handoffs.put(_handoff())
    assert await handoffs.mark("CA1", "answered") is True
    assert await handoffs.mark("CA1", "answered") is False
    assert await handoffs.settle("CA1", "no-answer") is True
    assert await handoffs.settle("CA1", "completed") is False  # a retried callback
    assert await handoffs.set_return_token("CA1", "tok1") is True
    state = await handoffs.get("CA1")
    assert state is not None
    assert (state.steps, state.outcome, state.return_token) == (
        frozenset({"answered"}),
        "no-answer",
        "tok1",
    )


async def test_an_expired_handoff_is_never_recreated_without_its_ttl(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    handoffs = Handoffs(redis_client, keys, ttl_s=60)
    await handoffs.put(_handoff())
    await redis_client.delete(keys.handoff("CA1"))  # as its TTL would
    assert await handoffs.mark("CA1", "connected") is False
    assert await handoffs.settle("CA1", "completed") is False
    assert await handoffs.set_return_token("CA1", "tok1") is False
    assert await redis_client.exists(keys.handoff("CA1")) == 0
    assert await handoffs.get("CA1") is None
