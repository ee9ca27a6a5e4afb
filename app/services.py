"""The composition root: the service's long-lived parts, built once at start-up.

``Services.build(settings)`` wires storage (Redis, the call store, stream tokens, the
recordings object store), flows and tools, the carrier's REST client and signature
checker, the transfer policy, the live-call registry and the campaign runtime
(``app.dialer.runtime.DialerRuntime``); it does no I/O. The app's lifespan
(``app.api.main``) starts the moving parts on top of it and shuts everything down in one
``AsyncExitStack`` (stop dialling and accepting, ``drain``, close the media listener, the
workers and the admin machinery, then ``close`` storage). Lower layers never import this
module; a call's bridge sees only ``Services.call_deps``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from app.call.deps import CallDeps
from app.call.keypad import DigitSink
from app.call.registry import LiveCalls
from app.carrier.rest import TransferGuard, TwilioCalls
from app.carrier.transfers import TransferPolicy
from app.carrier.twiml import SignatureChecker
from app.dialer.runtime import DialerRuntime
from app.errors import StoreError
from app.settings import PROJECT_ROOT, Settings
from app.store.backends import RedisCustomers, RedisOrders
from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.objects import ObjectStore, object_store
from app.store.redis import create_redis
from app.store.tokens import StreamTokens
from flows import FlowCatalog
from tools.base import Backends
from tools.registry import ToolRegistry, default_registry

log = logging.getLogger(__name__)


def transfer_guard(policy: TransferPolicy, redis: aioredis.Redis, keys: Keys) -> TransferGuard:
    """The REST client's last check before a transfer: the policy's destination rules,
    then the do-not-call list (a number that cannot be checked is refused)."""
    from app.admin.dnc import is_blocked

    async def guard(number: str) -> str | None:
        why = policy.destination_refusal(number)
        if why is not None:
            return why
        try:
            if await is_blocked(redis, keys, number):
                return "on the do-not-call list"
        except StoreError:
            return "the do-not-call list cannot be checked"
        return None

    return guard


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    keys: Keys
    store: CallStore
    tokens: StreamTokens
    flows: FlowCatalog
    registry: ToolRegistry
    backends: Backends
    calls_api: TwilioCalls
    signatures: SignatureChecker
    #: The campaign runtime (store, campaign service, REST placer, outcomes backend).
    dialer: DialerRuntime
    transfers: TransferPolicy = field(default_factory=TransferPolicy)
    live: LiveCalls = field(default_factory=LiveCalls)
    accepting: bool = True
    #: False from SIGTERM on: ``/readyz`` answers 503 while calls still arrive (grace).
    ready: bool = True
    #: Where ``collect_digits`` hands the digits (``app.call.keypad.DigitSink``; None:
    #: dropped once the model learnt the outcome).
    digit_sink: DigitSink | None = None
    #: The recordings store (``Settings.recordings_url``).
    recordings: ObjectStore | None = None

    @property
    def call_deps(self) -> CallDeps:
        """What a new call's bridge gets (nothing more; built per call, so a flow reload
        reaches the next call)."""
        return CallDeps(
            settings=self.settings,
            flows=self.flows,
            registry=self.registry,
            backends=self.backends,
            store=self.store,
            tokens=self.tokens,
            calls_api=self.calls_api,
            transfers=self.transfers,
            live=self.live,
            digit_sink=self.digit_sink,
            recordings=self.recordings,
        )

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Build every part. Raises ``ConfigError``/``FlowFileError`` for bad flows or tools."""
        redis = create_redis(settings.redis_url)
        keys = Keys(settings.redis_prefix)
        flows = FlowCatalog.load(settings.flows_dir)
        registry = default_registry(allow_transfer_to_numbers=settings.allow_transfer_to_any_number)
        for flow in flows.flows.values():
            registry.definitions(flow.tools)  # a flow naming an unknown tool fails here
        token = settings.twilio_auth_token.get_secret_value()
        live = LiveCalls()
        live.idle.set()
        transfers = TransferPolicy.from_settings(settings)
        retention_s = settings.retention_days * 86400
        dialer = DialerRuntime.build(settings, redis, flows=lambda: services.flows)
        backends = Backends(RedisCustomers(redis, keys), RedisOrders(redis, keys), dialer.outcomes)
        services = cls(
            settings=settings,
            redis=redis,
            keys=keys,
            store=CallStore(redis, keys, retention_s),
            tokens=StreamTokens(redis, keys, marker_ttl_s=retention_s),
            flows=flows,
            registry=registry,
            backends=backends,
            calls_api=TwilioCalls(
                settings.twilio_account_sid,
                token,
                settings.twilio_rest_base_url,
                settings.carrier_rest_timeout_s,
                guard=transfer_guard(transfers, redis, keys),
            ),
            signatures=SignatureChecker(token),
            dialer=dialer,
            transfers=transfers,
            live=live,
            recordings=object_store(settings.recordings_url, PROJECT_ROOT),
        )
        return services

    async def drain(self, started_at: float | None = None) -> None:
        """Stop accepting calls; wait for live calls until ``shutdown_drain_s`` after
        ``started_at`` (loop time; default now), then end the rest politely (a closing line
        through the carrier, then hang-up), and abort what is still open after that."""
        self.accepting = False
        self.ready = False
        if not self.live.calls:
            return
        loop = asyncio.get_running_loop()
        deadline = (started_at if started_at is not None else loop.time()) + (
            self.settings.shutdown_drain_s
        )
        log.info("draining %d live call(s)", len(self.live.calls))
        try:
            async with asyncio.timeout_at(deadline):
                await self.live.idle.wait()
            return
        except TimeoutError:
            pass
        log.warning("drain deadline passed; ending %d call(s) politely", len(self.live.calls))
        for call in list(self.live.calls.values()):
            try:
                call.end_politely(self.settings.shutdown_line, "shutdown")
            except Exception as exc:  # not bridged yet, or already closing
                log.info("cannot end %s politely (%r): aborting it", call.call_sid, exc)
                call.abort("shutdown")
        try:
            async with asyncio.timeout(self.settings.shutdown_goodbye_s):
                await self.live.idle.wait()
            return
        except TimeoutError:
            pass
        for call in list(self.live.calls.values()):
            call.abort("shutdown")
        try:
            async with asyncio.timeout(self.settings.call_close_timeout_ms / 1000):
                await self.live.idle.wait()
        except TimeoutError:
            log.error("calls still open after abort")

    async def close(self) -> None:
        """Close storage (after ``drain``)."""
        await self.redis.aclose()
