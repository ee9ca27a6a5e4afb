"""One-time stream tokens against real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.store.keys import Keys
from app.store.tokens import StreamTokens


async def test_token_is_one_time(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    keys = Keys(redis_prefix)
    tokens = StreamTokens(redis_client, keys)
    token = await tokens.issue("CA1", ttl_s=30)
    assert len(token) == 32
    assert 25 <= await redis_client.ttl(keys.token(token)) <= 30
    assert await tokens.redeem(token, "CA1") is True
    assert await tokens.redeem(token, "CA1") is False


async def test_token_bound_to_its_call(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    tokens = StreamTokens(redis_client, Keys(redis_prefix))
    token = await tokens.issue("CA1", ttl_s=30)
    assert await tokens.redeem(token, "CA2") is False
    # A wrong guess burns the token: the right call cannot use it afterwards either.
    assert await tokens.redeem(token, "CA1") is False
    assert await tokens.redeem("", "CA1") is False
    assert await tokens.redeem("x" * 500, "CA1") is False
    assert await tokens.redeem("never-issued", "CA1") is False


async def test_tokens_are_unique(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    tokens = StreamTokens(redis_client, Keys(redis_prefix))
    issued = {await tokens.issue("CA1", ttl_s=5) for _ in range(20)}
    assert len(issued) == 20
