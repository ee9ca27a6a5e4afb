"""Shared fixtures: a real Redis with a per-test key prefix, cleaned up afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to this test (``sbt:<hex>:``)."""
    return f"sbt:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A real Redis client (``decode_responses=True``); the test's keys are deleted after."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - environment problem, fail loudly
        pytest.fail(f"Redis is not answering at {REDIS_URL}: {exc}")
    yield client
    keys = [k async for k in client.scan_iter(match=f"{redis_prefix}*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
