"""One-time stream tokens, holding the call's context, against real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.store.keys import Keys, call_shard
from app.store.tokens import StreamContext, StreamTokens


def _ctx(call_sid: str = "CA1") -> StreamContext:
    return StreamContext(
        call_sid=call_sid,
        flow="support",
        direction="outbound",
        from_number="+15555550123",
        to_number="+15550100000",
        variables={"first_name": "Ada"},
        campaign="cmp_1",
    )


async def test_token_is_one_time_and_carries_the_context(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    tokens = StreamTokens(redis_client, keys)
    issued = await tokens.issue(_ctx(), ttl_s=30)
    assert issued is not None and issued.fresh
    shard, _, secret = issued.token.partition(".")
    assert shard == call_shard("CA1") and len(secret) == 32  # the call's slot, 192 bits
    assert 25 <= await redis_client.ttl(keys.token(issued.token)) <= 30
    assert await tokens.redeem(issued.token, "CA1") == _ctx()
    assert await tokens.redeem(issued.token, "CA1") is None


async def test_token_bound_to_its_call(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    tokens = StreamTokens(redis_client, Keys(redis_prefix))
    issued = await tokens.issue(_ctx(), ttl_s=30)
    assert issued is not None
    assert await tokens.redeem(issued.token, "CA2") is None
    # A wrong guess burns the token: the right call cannot use it afterwards either.
    assert await tokens.redeem(issued.token, "CA1") is None
    assert await tokens.redeem("", "CA1") is None
    assert await tokens.redeem("x" * 500, "CA1") is None
    assert await tokens.redeem("never-issued", "CA1") is None


async def test_one_token_per_call_ever(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    """A repeat gets the first token and the first context; once redeemed, none at all."""
    tokens = StreamTokens(redis_client, Keys(redis_prefix))
    first = await tokens.issue(_ctx(), ttl_s=30)
    other = StreamContext(call_sid="CA1", flow="reminder", from_number="+15550001111")
    again = await tokens.issue(other, ttl_s=30)
    assert first is not None and again is not None
    assert again.token == first.token and not again.fresh and again.context == _ctx()
    assert (await tokens.pending("CA1")) == again
    assert await tokens.redeem(first.token, "CA1") == _ctx()
    assert await tokens.issue(_ctx(), ttl_s=30) is None
    assert await tokens.pending("CA1") is None


async def test_tokens_are_unique(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    tokens = StreamTokens(redis_client, Keys(redis_prefix))
    issued = [await tokens.issue(_ctx(f"CA{i}"), ttl_s=5) for i in range(20)]
    assert len({t.token for t in issued if t is not None}) == 20
