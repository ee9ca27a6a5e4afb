"""Dialer tests: real Redis (per-test prefix), a fake clock and a fake REST placer."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.dialer.clock import FakeClock
from app.dialer.models import CallingWindow, CampaignSpec
from app.dialer.placer import CarrierCallState, OutboundCall
from app.dialer.runner import Dialer
from app.dialer.runtime import DialerRuntime
from app.errors import DialFailed
from app.settings import Settings
from tests.conftest import REDIS_URL

#: Monday 2025-03-03 15:00 UTC: 10:00 in New York, 15:00 in London, 00:00 Tuesday in Tokyo.
T0 = int(datetime.fromisoformat("2025-03-03T15:00:00+00:00").timestamp() * 1000)
ALL_DAYS = CallingWindow(
    start=time(0), end=time(23, 59), days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
)


@dataclass
class FakePlacer:
    """Stands in for ``CallPlacer``: records creates; ``fail`` maps numbers to a
    ``DialFailed`` to raise; ``states`` answers ``fetch``."""

    created: list[OutboundCall] = field(default_factory=list)
    sids: dict[str, str] = field(default_factory=dict)
    fail: dict[str, DialFailed] = field(default_factory=dict)
    states: dict[str, CarrierCallState | None] = field(default_factory=dict)
    updates: list[tuple[str, str]] = field(default_factory=list)
    _seq: Any = field(default_factory=lambda: itertools.count(1))

    async def create(self, call: OutboundCall) -> str:
        if call.to in self.fail:
            raise self.fail[call.to]
        self.created.append(call)
        sid = f"CA{next(self._seq):032x}"
        self.sids[sid] = call.to
        return sid

    async def update_twiml(self, call_sid: str, twiml: str) -> None:
        self.updates.append((call_sid, twiml))

    async def hangup(self, call_sid: str) -> None:
        self.updates.append((call_sid, "hangup"))

    async def fetch(self, call_sid: str) -> CarrierCallState | None:
        return self.states.get(call_sid)


def settings_for(prefix: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "twilio_auth_token": "dialer-test-token",
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "public_base_url": "http://127.0.0.1:9",
        "dialer_lease_ms": 5000,
        "dialer_dial_grace_ms": 20_000,
        "dialer_call_grace_ms": 60_000,
        "dialer_account_cps": 100,
        "log_json": False,
    }
    values.update(kw)
    return Settings(**values)


@dataclass
class Rig:
    """A runtime on a fake clock with a fake placer; ``dialer(name)`` makes dialers."""

    runtime: DialerRuntime
    clock: FakeClock
    placer: FakePlacer

    @property
    def campaigns(self) -> Any:
        return self.runtime.campaigns

    @property
    def store(self) -> Any:
        return self.runtime.store

    def dialer(self, name: str, **config: Any) -> Dialer:
        cfg = self.runtime.settings.dialer.model_copy(update=config)
        blocked = self.blocked

        async def dnc(e164: str) -> bool:
            return e164 in blocked

        return Dialer(
            self.runtime.campaigns,
            placer=self.placer,  # type: ignore[arg-type]
            dnc=dnc,
            clock=self.clock,
            config=cfg,
            owner=name,
        )

    blocked: set[str] = field(default_factory=set)

    async def campaign(self, contacts: list[dict[str, Any]], **spec: Any) -> str:
        values: dict[str, Any] = {
            "name": "test",
            "flow": "reminder",
            "from_number": "+15550100000",
            "window": ALL_DAYS,
            "voicemail": "retry",
        }
        values.update(spec)
        c = await self.campaigns.create(CampaignSpec.model_validate(values))
        import orjson

        report = await self.campaigns.import_contacts(c.id, orjson.dumps(contacts), "json")
        assert report.rejected == 0, report.errors
        await self.campaigns.start(c.id)
        return str(c.id)


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(redis_client: aioredis.Redis, redis_prefix: str) -> RigFactory:
    def factory(**settings: Any) -> Rig:
        clock = FakeClock(T0)
        runtime = DialerRuntime.build(
            settings_for(redis_prefix, **settings), redis_client, clock=clock
        )
        placer = FakePlacer()
        runtime.placer = placer  # type: ignore[assignment]
        runtime.campaigns.placer = placer  # type: ignore[assignment]
        return Rig(runtime, clock, placer)

    return factory


@pytest.fixture
def rig(make_rig: RigFactory) -> Rig:
    return make_rig()
