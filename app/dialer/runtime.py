"""Wiring the dialer parts from ``Settings`` (the app's lifespan and ``switchboard dialer``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from app.admin.dnc import is_blocked
from app.dialer.clock import Clock, SystemClock
from app.dialer.outcomes import CampaignOutcomes
from app.dialer.placer import CallPlacer
from app.dialer.runner import Dialer
from app.dialer.service import Campaigns, DialerUrls
from app.dialer.store import CampaignStore
from app.events import EventBus
from app.settings import Settings
from app.store.keys import Keys
from flows import FlowCatalog


def runtime_of(state: object) -> DialerRuntime | None:
    """The ``DialerRuntime`` an app keeps in ``app.state.dialer`` (None when absent)."""
    runtime = getattr(state, "dialer", None)
    return runtime if isinstance(runtime, DialerRuntime) else None


@dataclass
class DialerRuntime:
    """Store, campaign service, REST placer and tool backend sharing one Redis client."""

    settings: Settings
    redis: aioredis.Redis
    keys: Keys
    store: CampaignStore
    campaigns: Campaigns
    placer: CallPlacer
    outcomes: CampaignOutcomes

    @classmethod
    def build(
        cls,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        clock: Clock | None = None,
        flows: Callable[[], FlowCatalog] | None = None,
    ) -> DialerRuntime:
        """Wire everything; no I/O. ``flows`` (the server's catalog) enables flow checks."""
        clock = clock or SystemClock()
        keys = Keys(settings.redis_prefix)
        store = CampaignStore(redis, keys, settings.retention_days * 86400)
        placer = CallPlacer(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_rest_base_url,
            timeout_s=settings.dialer.rest_timeout_s,
        )
        urls = DialerUrls(
            voice=settings.public_url("/twilio/voice"),
            status=settings.public_url("/twilio/status"),
            amd=settings.public_url("/twilio/amd"),
        )
        campaigns = Campaigns(
            store,
            clock=clock,
            placer=placer,
            urls=urls,
            flows=flows,
            max_import_rows=settings.dialer.max_import_rows,
            events=EventBus.from_settings(redis, settings),
        )
        return cls(settings, redis, keys, store, campaigns, placer, CampaignOutcomes(store, clock))

    @property
    def clock(self) -> Clock:
        return self.campaigns.clock

    def dialer(self, owner: str | None = None) -> Dialer:
        """A ``Dialer`` over this runtime (global DNC from ``app.admin.dnc``)."""
        redis, keys = self.redis, self.keys

        async def dnc(e164: str) -> bool:
            return await is_blocked(redis, keys, e164)

        return Dialer(
            self.campaigns,
            placer=self.placer,
            dnc=dnc,
            clock=self.clock,
            config=self.settings.dialer,
            owner=owner,
        )

    def use_clock(self, clock: Clock) -> None:
        """Switch every part to ``clock`` (tests: a ``FakeClock``)."""
        self.campaigns.clock = clock
        self.outcomes.clock = clock
