"""The Redis client factory used by the service."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff


def create_redis(
    url: str,
    *,
    socket_timeout_s: float = 2.0,
    connect_timeout_s: float = 2.0,
    health_check_interval_s: int = 30,
    max_connections: int = 64,
    retries: int = 2,
) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``).

    Replies are decoded to ``str`` (``decode_responses=True``). Reads/writes give up
    after ``socket_timeout_s`` and connects after ``connect_timeout_s`` (raising
    ``redis.exceptions.TimeoutError``) so a stuck Redis never hangs a call; idle
    connections are pinged every ``health_check_interval_s``. No I/O happens here.

    At most ``max_connections`` are open; past that a command waits (up to
    ``socket_timeout_s``) for a free one instead of failing at once with "Too many
    connections": hundreds of calls ending together each write their record.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        socket_keepalive=True,
        health_check_interval=health_check_interval_s,
        max_connections=max_connections,
        timeout=socket_timeout_s,
        retry=Retry(ExponentialWithJitterBackoff(cap=0.25, base=0.02), retries),
    )
    return aioredis.Redis.from_pool(pool)
