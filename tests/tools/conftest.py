"""Tool test fixtures: seeded Redis backends and a recording ``CallControl``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from app.demo import seed_demo
from app.errors import ToolRefused
from app.migrate import migrate
from app.store.backends import RedisCustomers, RedisOrders
from app.store.keys import Keys
from tools.base import Backends, CallInfo, ToolContext

DANA = "+15555550123"
LINE = "+15550100000"
TARGETS = {"human": "+15550109999", "sales": "+15550108888"}


@dataclass
class RecordingControl:
    """A ``CallControl`` that records requests; a second transfer is refused like the session."""

    transfers: list[tuple[str, str]] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)
    routings: list[tuple[str, str]] = field(default_factory=list)

    def request_transfer(self, to_number: str, reason: str, mode: str | None = None) -> None:
        if self.transfers:
            raise ToolRefused("a transfer was already requested on this call")
        self.transfers.append((to_number, reason))

    def request_hangup(self, reason: str) -> None:
        self.hangups.append(reason)

    def record_routing(self, target: str, reason: str) -> None:
        self.routings.append((target, reason))


@pytest.fixture
async def backends(redis_client: aioredis.Redis, redis_prefix: str) -> Backends:
    keys = Keys(redis_prefix)
    await migrate(redis_client, keys)
    await seed_demo(redis_client, keys)
    return Backends(
        customers=RedisCustomers(redis_client, keys), orders=RedisOrders(redis_client, keys)
    )


@pytest.fixture
def control() -> RecordingControl:
    return RecordingControl()


def make_ctx(backends: Backends, control: RecordingControl, from_number: str = DANA) -> ToolContext:
    call = CallInfo(
        call_sid="CA1",
        direction="inbound",
        from_number=from_number,
        to_number=LINE,
        flow="support",
        transfer_targets=dict(TARGETS),
    )
    return ToolContext(call=call, control=control, backends=backends)


@pytest.fixture
def ctx(backends: Backends, control: RecordingControl) -> ToolContext:
    return make_ctx(backends, control)
