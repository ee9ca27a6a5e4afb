"""Shared fixtures: a real Redis with a per-test key prefix, cleaned up afterwards, and
private ``redis-server`` processes for tests that stall or restart Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.helpers import RedisServer, RedisServerFactory

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

#: Fixtures of the long tests (a whole offline stack with real-time calls, a browser).
LONG_TEST_FIXTURES = frozenset({"make_stack", "browser"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first (a stable sort: each group keeps its order), so the parallel
    workers of ``make test`` (pytest-xdist hands tests out in this order) end together
    instead of one of them starting a 40 s test when the rest are done."""
    items.sort(
        key=lambda item: not LONG_TEST_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    )


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


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServerFactory]:
    """``await redis_server(*args)`` → a started :class:`~tests.helpers.RedisServer` of
    this test's own (free 127.0.0.1 port, files in a tmp dir, ``--save "" --appendonly
    no`` unless ``args`` say otherwise). Pause, freeze or restart it freely: the shared
    Redis other tests use is untouched. Every one is stopped after the test."""
    servers: list[RedisServer] = []

    async def factory(*args: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", tuple(args))
        servers.append(server)
        await server.start()
        return server

    yield factory
    for server in reversed(servers):
        await server.stop()
