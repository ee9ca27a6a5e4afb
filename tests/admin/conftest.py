"""Admin tests: the full offline stack (``make_stack``) plus admin API keys and a client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.admin.keys import ApiKeys
from app.store.keys import Keys
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from tests.e2e.conftest import (  # noqa: F401
    Stack,
    StackFactory,
    eventually,
    make_stack,
    order_status_call,
)

CALLER = "+15555550123"
SUPPORT = "+15550100000"


@dataclass
class AdminStack:
    """A running stack with a read key, a write key and an HTTP client on its base URL."""

    stack: Stack
    read_key: str
    write_key: str
    http: httpx.AsyncClient

    @property
    def read(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_key}"}

    @property
    def write(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_key}"}


AdminFactory = Callable[..., Any]


async def make_keys(redis: aioredis.Redis, prefix: str) -> tuple[str, str]:
    keys = ApiKeys(redis, Keys(prefix))
    _, read = await keys.create("test reader", "read")
    _, write = await keys.create("test operator", "write")
    return read, write


@pytest.fixture
async def make_admin(
    make_stack: StackFactory,  # noqa: F811 - the e2e fixture, imported above
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> AsyncIterator[AdminFactory]:
    """``await make_admin(**settings_overrides)`` → an ``AdminStack``."""
    clients: list[httpx.AsyncClient] = []
    keys: tuple[str, str] | None = None

    async def factory(**overrides: Any) -> AdminStack:
        nonlocal keys
        stack: Stack = await make_stack(**overrides)
        if keys is None:
            keys = await make_keys(redis_client, redis_prefix)
        # One connection per request: the fixture's server socket has no TCP_NODELAY, so
        # keep-alive requests would each wait ~40 ms for a delayed ACK.
        http = httpx.AsyncClient(
            base_url=stack.base_url, timeout=10, headers={"Connection": "close"}
        )
        clients.append(http)
        return AdminStack(stack, keys[0], keys[1], http)

    yield factory
    for http in clients:
        await http.aclose()


@pytest.fixture
async def admin(make_admin: AdminFactory) -> AdminStack:
    result: AdminStack = await make_admin()
    return result


async def order_call(admin: AdminStack) -> str:
    """A whole offline call: the caller asks about order 1042, then says goodbye."""
    script = order_status_call()
    result = await admin.stack.sim.place_inbound_call(script)
    assert result.errors == []
    return result.call_sid


def long_call(**kw: Any) -> CallScript:
    """A caller who asks about an order, then stays on the line (up to 30 s) in silence."""
    values: dict[str, Any] = {
        "from_number": CALLER,
        "to_number": SUPPORT,
        "caller_audio": [recording_ulaw("order_status")],
        "max_duration_s": 30,
    }
    values.update(kw)
    return CallScript(**values)


async def wait_live(admin: AdminStack, timeout_s: float = 10.0) -> dict[str, Any]:
    """Poll ``GET /admin/live`` until a call is listed; return it."""
    found: list[dict[str, Any]] = []

    async def poll() -> bool:
        r = await admin.http.get("/admin/live", headers=admin.read)
        r.raise_for_status()
        found[:] = r.json()["items"]
        return bool(found)

    await until(poll, timeout_s)
    return found[0]


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until ``await predicate()`` holds, checking every 50 ms; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        for _ in iter(int, 1):  # until the predicate holds or the timeout cancels us
            if await predicate():
                return
            await asyncio.sleep(0.05)
