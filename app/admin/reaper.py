"""The orphan reaper: a surviving instance closes the calls of an instance that died.

Every instance runs one ``OrphanReaper`` (started and stopped in the app's lifespan).
Every ``live_reap_interval_s`` it

1. claims the live-registry entries whose heartbeat deadline passed (their instance
   missed ``BEATS_TO_EXPIRE`` heartbeats: ``app.admin.live``), atomically, so one
   instance closes each call (``app.store.orphans.claim_expired``), and closes each
   claimed call's record unless it had ended: ``status=ended``,
   ``end_reason="instance lost"``, ``ended_at_ms`` (``close_if_open``);
2. closes the calls still ``in-progress`` that no instance lists as live although they
   were created longer ago than any call can live (``stream_token_ttl_s`` +
   ``max_call_duration_s`` + two registry TTLs): a crash between a claim and its close,
   or calls of a Redis restored from an old snapshot.

A call's deadline passes only when its instance could not beat for a whole registry TTL
(three heartbeats). Redis being away makes every instance miss beats, so after this
instance could not reach Redis it claims nothing until Redis has answered it for one
registry TTL: the instances cut off by the same outage have beaten again by then.
Numbers of calls closed: ``switchboard_calls_reaped_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from app import metrics
from app.admin.live import BEATS_TO_EXPIRE, live_sids
from app.errors import StoreError
from app.loops import BackgroundLoop, raise_if_cancelling
from app.store.orphans import INSTANCE_LOST, claim_expired, close_if_open, stale_in_progress

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

#: Registry entries claimed (and in-progress calls examined) per reaper pass.
REAP_BATCH = 200


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class OrphanReaper(BackgroundLoop):
    """Closes the records of calls whose instance died (module docstring).

    ``instance`` names this instance in logs; ``clock_ms`` (epoch ms) is injectable.
    """

    task_name = "orphan-reaper"

    def __init__(
        self, services: Services, instance: str, *, clock_ms: Callable[[], int] = _now_ms
    ) -> None:
        self.services = services
        self.instance = instance
        self.clock_ms = clock_ms
        settings = services.settings
        self.interval_s = settings.live_reap_interval_s
        #: How long a registry entry outlives its last heartbeat (ms).
        self.ttl_ms = int(settings.live_heartbeat_s * 1000 * BEATS_TO_EXPIRE)
        #: No bridged call is live longer after its record was created than this (ms).
        self.max_life_ms = (
            settings.stream_token_ttl_s + settings.max_call_duration_s
        ) * 1000 + 2 * self.ttl_ms
        self.closed = 0
        #: Epoch ms since Redis has answered this reaper without a break (None: it failed).
        self._healthy_since: int | None = None

    async def _run(self) -> None:
        while True:
            try:
                await self.reap()
            except (StoreError, RedisError, OSError) as exc:
                raise_if_cancelling()  # a cancel redis-py turned into an error
                self._healthy_since = None
                log.warning("orphan reaper: Redis unavailable: %s", exc)
            except Exception:
                log.exception("orphan reaper pass failed")
            await asyncio.sleep(self.interval_s)

    async def reap(self) -> int:
        """One pass (module docstring); returns how many calls it closed. Raises
        ``StoreError`` when Redis fails (the next pass waits a registry TTL)."""
        store = self.services.store
        now = self.clock_ms()
        if self._healthy_since is None:
            await store.redis.ping()
            self._healthy_since = now
        if now - self._healthy_since < self.ttl_ms:
            return 0  # owners cut off by the same outage may not have beaten again yet
        closed = 0
        for sid in await claim_expired(store, cutoff_ms=now, limit=REAP_BATCH):
            closed += await self._close(sid, now, "its instance stopped beating")
        stale = await stale_in_progress(
            store, created_before_ms=now - self.max_life_ms, limit=REAP_BATCH
        )
        live = await live_sids(self.services.redis, self.services.keys, stale)
        for sid in stale:
            if sid not in live:
                closed += await self._close(sid, now, "in progress past any call's life")
        return closed

    async def _close(self, sid: str, now: int, why: str) -> int:
        if await close_if_open(self.services.store, sid, ended_at_ms=now) != 1:
            return 0
        self.closed += 1
        metrics.CALLS_REAPED.inc()
        log.warning("call %s closed by %s: %s (%s)", sid, self.instance, INSTANCE_LOST, why)
        return 1
