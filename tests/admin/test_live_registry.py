"""The live-call registry against a Redis of its own that dies: a call that ended while
Redis was away is taken out of the registry by the next heartbeat that gets through (so
no orphan reaper takes it for a dead instance's), and other instances' expired entries
are left for the reaper to claim."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import RedisError

from app.admin.live import LiveRegistry
from app.call.registry import LiveCalls
from app.settings import Settings
from app.store.keys import Keys
from app.store.redis import create_redis
from tests.helpers import RedisServerFactory


class _Call:
    def __init__(self, call_sid: str) -> None:
        self.call_sid = call_sid
        self.session = None  # no turn latencies to observe

    def snapshot(self) -> dict[str, str | int]:
        return {"flow": "support", "direction": "inbound", "state": "listening"}


async def test_an_ended_call_leaves_the_registry_once_redis_answers(
    redis_server: RedisServerFactory, redis_prefix: str
) -> None:
    server = await redis_server("--appendonly", "yes", "--appendfsync", "always")
    redis = create_redis(server.url, socket_timeout_s=0.3, connect_timeout_s=0.3, retries=0)
    keys = Keys(redis_prefix)
    live = LiveCalls()
    services: Any = SimpleNamespace(
        redis=redis, keys=keys, live=live, settings=Settings(live_heartbeat_s=0.5)
    )
    registry = LiveRegistry(services, "me")
    other = "CA" + "9" * 32  # another instance's entry, expired: the reaper's to claim
    await redis.zadd(keys.live_calls_of(other), {other: time.time() * 1000 - 10_000})
    sid = "CA" + "1" * 32
    live.add(_Call(sid))
    await registry.beat()
    assert await redis.zscore(keys.live_calls_of(sid), sid) is not None
    live.remove(sid)
    await server.kill()  # the ended call's removal cannot be sent
    with pytest.raises(RedisError):
        await registry.beat()
    await server.start()  # back from its AOF, entry and all
    assert await redis.zscore(keys.live_calls_of(sid), sid) is not None
    await registry.beat()
    assert await redis.zscore(keys.live_calls_of(sid), sid) is None
    assert await redis.exists(keys.live_call(sid)) == 0
    assert await redis.zscore(keys.live_calls_of(other), other) is not None
    await redis.aclose()
