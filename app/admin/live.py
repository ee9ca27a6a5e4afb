"""The registry of calls in progress on every instance.

Each instance runs one ``LiveRegistry``: on every change of ``services.live`` (and at
least every ``live_heartbeat_s`` seconds) it writes, for each call it bridges,
``Keys.live_call`` (a hash naming the instance, TTL three heartbeats) and the call's
heartbeat deadline as its score in its shard's ``Keys.live_calls`` set (one of
``CALL_SHARDS``, by ``call_shard``: no single hot key on a Redis Cluster; listings
read every shard and merge them); calls that left
``services.live`` are removed at once. An instance that dies stops refreshing, and its
calls drop out of ``live_calls()`` within three heartbeats; their entries stay in
``{p}live:calls`` past their deadline until a surviving instance's orphan reaper
(``app.admin.reaper``) claims them and closes the calls' records.

The registry also feeds the turn-latency histogram (``switchboard_turn_latency_seconds``)
from each call's session as turns complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app import metrics
from app.errors import StoreError
from app.loops import BackgroundLoop, raise_if_cancelling
from app.store.keys import CALL_SHARD_TAGS, Keys

if TYPE_CHECKING:
    from app.call.registry import LiveCall as BridgedCall
    from app.services import Services

log = logging.getLogger(__name__)

#: Calls written per Redis pipeline in one heartbeat (the loop is free between them).
BEAT_CHUNK = 25
#: A registry entry outlives this many missed heartbeats.
BEATS_TO_EXPIRE = 3


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call in progress as the registry knows it. Times are epoch ms; numbers masked."""

    call_sid: str
    instance: str
    flow: str
    direction: str
    from_masked: str
    to_masked: str
    state: str
    started_at_ms: int
    heartbeat_ms: int

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> LiveCall:
        try:
            return cls(
                call_sid=raw["call_sid"],
                instance=raw.get("instance", ""),
                flow=raw.get("flow", ""),
                direction=raw.get("direction", ""),
                from_masked=raw.get("from_masked", ""),
                to_masked=raw.get("to_masked", ""),
                state=raw.get("state", ""),
                started_at_ms=int(raw.get("started_at_ms", 0)),
                heartbeat_ms=int(raw.get("heartbeat_ms", 0)),
            )
        except (KeyError, ValueError) as exc:
            raise StoreError("malformed live call entry") from exc


def describe(
    bridge: BridgedCall, instance: str, started_at_ms: int, now_ms: int
) -> dict[str, str | int]:
    """The registry hash of one bridged call (numbers masked)."""
    snap = bridge.snapshot()
    return {
        "call_sid": bridge.call_sid,
        "instance": instance,
        "flow": snap.get("flow", ""),
        "direction": snap.get("direction", ""),
        "from_masked": snap.get("from_masked", ""),
        "to_masked": snap.get("to_masked", ""),
        "state": snap.get("state", ""),
        "started_at_ms": started_at_ms,
        "heartbeat_ms": now_ms,
    }


async def live_calls(redis: aioredis.Redis, keys: Keys) -> list[LiveCall]:
    """Calls in progress on any instance, oldest first. Raises ``StoreError``."""
    now = _now_ms()
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for shard in CALL_SHARD_TAGS:
                pipe.zrangebyscore(keys.live_calls(shard), now, "+inf")
            shards: list[list[Any]] = await pipe.execute()
        sids = [sid for found in shards for sid in found]
        if not sids:
            return []
        async with redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(keys.live_call(sid))
            raws: list[dict[str, str]] = await pipe.execute()
    except RedisError as exc:
        raise StoreError(f"live call listing failed: {exc}") from exc
    calls = [LiveCall.from_hash(raw) for raw in raws if raw and "call_sid" in raw]
    return sorted(calls, key=lambda c: (c.started_at_ms, c.call_sid))


async def live_call(redis: aioredis.Redis, keys: Keys, call_sid: str) -> LiveCall | None:
    """The registry entry of ``call_sid`` if it is live on some instance, else None."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zscore(keys.live_calls_of(call_sid), call_sid)
            pipe.hgetall(keys.live_call(call_sid))
            deadline, raw = await pipe.execute()
    except RedisError as exc:
        raise StoreError(f"live call lookup failed: {exc}") from exc
    if deadline is None or float(deadline) < _now_ms() or not raw or "call_sid" not in raw:
        return None
    return LiveCall.from_hash(raw)


async def live_sids(redis: aioredis.Redis, keys: Keys, call_sids: list[str]) -> set[str]:
    """Which of ``call_sids`` are live on some instance (one pipelined ``ZSCORE`` each)."""
    if not call_sids:
        return set()
    now = _now_ms()
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for sid in call_sids:
                pipe.zscore(keys.live_calls_of(sid), sid)
            scores = await pipe.execute()
    except RedisError as exc:
        raise StoreError(f"live call lookup failed: {exc}") from exc
    return {sid for sid, s in zip(call_sids, scores, strict=True) if s is not None and s >= now}


class LiveRegistry(BackgroundLoop):
    """Publishes this instance's ``services.live`` calls to Redis (see module docstring)."""

    task_name = "live-registry"

    def __init__(self, services: Services, instance: str) -> None:
        self.services = services
        self.instance = instance
        self.interval_s = services.settings.live_heartbeat_s
        self._started: dict[str, int] = {}
        self._bridges: dict[str, BridgedCall] = {}
        self._latencies_seen: dict[str, int] = {}
        #: SIDs of calls that ended whose registry entries are not removed yet.
        self._unlisted: set[str] = set()

    async def stop(self) -> None:
        """Stop beating and remove this instance's remaining entries (best effort)."""
        await super().stop()
        with contextlib.suppress(Exception):
            await self.beat(final=True)

    async def _run(self) -> None:
        changed = self.services.live.changed
        while True:
            changed.clear()
            try:
                await self.beat()
            except (StoreError, RedisError, OSError) as exc:
                raise_if_cancelling()  # a cancel redis-py turned into an error
                log.warning("live registry heartbeat failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await changed.wait()

    async def beat(self, *, final: bool = False) -> None:
        """Write every live call's entry and drop the ones that ended (all when ``final``)."""
        redis, keys = self.services.redis, self.services.keys
        now = _now_ms()
        current = {} if final else dict(self.services.live.calls)
        gone = [sid for sid in self._bridges if sid not in current]
        for sid in gone:
            self._observe_latencies(sid, self._bridges.pop(sid))
            self._started.pop(sid, None)
            self._latencies_seen.pop(sid, None)
        # Calls that ended are taken out of the registry by the next beat that reaches
        # Redis (else the orphan reaper would take them for a dead instance's).
        self._unlisted.update(gone)
        unlisted = list(self._unlisted)
        ttl_ms = int(self.interval_s * 1000 * BEATS_TO_EXPIRE)
        sids = [sid for sid in current if sid]
        # One pipeline per BEAT_CHUNK calls: building and parsing a pipeline runs on the
        # event loop that carries the calls' audio (~75 µs per call), so a single one for
        # hundreds of calls would stall every call for over 10 ms.
        for i in range(0, max(len(sids), 1), BEAT_CHUNK):
            chunk = sids[i : i + BEAT_CHUNK]
            async with redis.pipeline(transaction=False) as pipe:
                for sid in chunk:
                    bridge = current[sid]
                    self._bridges[sid] = bridge
                    started = self._started.setdefault(sid, now)
                    entry = describe(bridge, self.instance, started, now)
                    pipe.hset(keys.live_call(sid), mapping=entry)  # type: ignore[arg-type]
                    pipe.pexpire(keys.live_call(sid), ttl_ms)
                    self._observe_latencies(sid, bridge)
                for sid in chunk:
                    pipe.zadd(keys.live_calls_of(sid), {sid: now + ttl_ms})
                if i == 0:
                    for sid in unlisted:
                        pipe.zrem(keys.live_calls_of(sid), sid)
                        pipe.delete(keys.live_call(sid))
                await pipe.execute()
                if i == 0:
                    self._unlisted.difference_update(unlisted)

    def _observe_latencies(self, sid: str, bridge: BridgedCall) -> None:
        session = bridge.session
        if session is None:
            return
        values = list(session.turn_latencies_ms)
        seen = self._latencies_seen.get(sid, 0)
        for value in values[seen:]:
            metrics.TURN_LATENCY.observe(value / 1000)
        self._latencies_seen[sid] = len(values)
