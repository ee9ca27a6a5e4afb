"""Warm transfers in progress: what the whisper and ``<Dial action>`` callbacks need.

When a call leaves its media stream for a warm transfer (``app.carrier.warm``), the
bridge writes a ``Handoff`` (the call's context, the target, the briefing and the
conversation so far) to ``Keys.handoff(call_sid)``; the webhooks mark the steps on the
same hash (``answered``, ``declined``, ``connected``) and the ``<Dial action>`` callback
claims the outcome once (``HSETNX``), so a retried callback gets the same answer; each
field is written only while the hash holds its record, in one Lua step, so a callback
that comes after the hand-off expired never recreates the hash without its TTL. When the
caller comes back to the agent a one-time stream token (``app.store.tokens``) binds the
new media stream to the hand-off, and its bridge replays the conversation.

The record holds the raw numbers the tools need (as a stream token does) for at most
``ttl_s``. Every method raises ``StoreError`` when Redis fails or holds a malformed record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.call.conversation import Entry
from app.errors import StoreError
from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.tokens import StreamContext

#: Hash fields a webhook may set (``mark``).
STEPS = frozenset({"answered", "briefed", "declined", "connected"})

#: Set field ARGV[1] to ARGV[2] of the hand-off hash KEYS[1] only while it holds its
#: record (an expired hand-off is never recreated without its TTL); only if the field is
#: unset when ARGV[3] is "nx". 1: set, 0: the field was set already, -1: no hand-off.
_SET_IF_LIVE_LUA = """
if redis.call('HEXISTS', KEYS[1], 'record') == 0 then return -1 end
if ARGV[3] == 'nx' then return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class Handoff:
    """One warm transfer: ``context`` the call's (as its stream token had it), ``target``
    E.164 or ``sip:``, ``briefing`` what the target hears, ``entries`` the conversation so
    far (``app.call.conversation``), ``offset_ms`` ms into the call when it left the
    stream, ``started_wall_ms`` epoch ms when its first stream started."""

    context: StreamContext
    target: str
    reason: str
    briefing: str
    decline_key: str
    entries: tuple[Entry, ...] = ()
    offset_ms: int = 0
    started_wall_ms: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def dumps(self) -> str:
        return orjson.dumps(
            {
                "context": orjson.loads(self.context.dumps()),
                "target": self.target,
                "reason": self.reason,
                "briefing": self.briefing,
                "decline_key": self.decline_key,
                "entries": [[e.kind, e.text, e.call_id, e.name, e.arguments] for e in self.entries],
                "offset_ms": self.offset_ms,
                "started_wall_ms": self.started_wall_ms,
            }
        ).decode()

    @classmethod
    def loads(cls, raw: str | bytes) -> Handoff:
        """Raises ``StoreError`` for a malformed record."""
        try:
            data: Any = orjson.loads(raw)
            return cls(
                context=StreamContext.loads(orjson.dumps(data["context"])),
                target=str(data["target"]),
                reason=str(data.get("reason", "")),
                briefing=str(data.get("briefing", "")),
                decline_key=str(data.get("decline_key", "")),
                entries=tuple(
                    Entry(str(k), str(t), str(c), str(n), str(a))  # type: ignore[arg-type]
                    for k, t, c, n, a in data.get("entries", [])
                ),
                offset_ms=int(data.get("offset_ms", 0)),
                started_wall_ms=int(data.get("started_wall_ms", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError("malformed warm transfer record") from exc


@dataclass(frozen=True, slots=True)
class HandoffState:
    """A hand-off and the steps marked on it so far."""

    handoff: Handoff
    steps: frozenset[str]
    outcome: str = ""
    return_token: str = ""


class Handoffs:
    """Read and write ``Keys.handoff`` hashes (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self._set_if_live = redis.register_script(_SET_IF_LIVE_LUA)

    async def _set(self, call_sid: str, name: str, value: str, *, nx: bool) -> bool:
        """One field of a live hand-off, in one atomic step (``_SET_IF_LIVE_LUA``)."""
        keys = [self.keys.handoff(call_sid)]
        done = await self._set_if_live(keys=keys, args=[name, value, "nx" if nx else ""])
        return int(done) == 1

    @classmethod
    def of(cls, store: CallStore, ttl_s: int) -> Handoffs:
        """On the call store's Redis and keys."""
        return cls(store.redis, store.keys, ttl_s)

    async def put(self, handoff: Handoff) -> None:
        """Start a warm transfer (replacing an earlier one of the call)."""
        key = self.keys.handoff(handoff.context.call_sid)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, "record", handoff.dumps())
                pipe.expire(key, self.ttl_s)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"writing a warm transfer failed: {exc}") from exc

    async def get(self, call_sid: str) -> HandoffState | None:
        """The call's warm transfer, or None when it has none (or it expired)."""
        try:
            raw = await self.redis.hgetall(self.keys.handoff(call_sid))
        except RedisError as exc:
            raise StoreError(f"reading a warm transfer failed: {exc}") from exc
        fields = {str(k): str(v) for k, v in raw.items()}
        if "record" not in fields:
            return None
        return HandoffState(
            Handoff.loads(fields["record"]),
            frozenset(k for k in fields if k in STEPS),
            fields.get("outcome", ""),
            fields.get("return_token", ""),
        )

    async def mark(self, call_sid: str, step: str) -> bool:
        """Mark ``step`` (one of ``STEPS``) on the call's warm transfer; True the first
        time, False when it was marked already or the call has none."""
        if step not in STEPS:
            raise ValueError(f"unknown warm transfer step {step!r}")
        try:
            return await self._set(call_sid, step, "1", nx=True)
        except RedisError as exc:
            raise StoreError(f"marking a warm transfer failed: {exc}") from exc

    async def settle(self, call_sid: str, outcome: str) -> bool:
        """Claim the transfer's outcome; True for the first claim only (a retried
        ``<Dial action>`` callback gets False and answers as the first did)."""
        try:
            return await self._set(call_sid, "outcome", outcome, nx=True)
        except RedisError as exc:
            raise StoreError(f"settling a warm transfer failed: {exc}") from exc

    async def set_return_token(self, call_sid: str, token: str) -> bool:
        """Record the returning stream's token; False (nothing written) when the call's
        hand-off has expired."""
        try:
            return await self._set(call_sid, "return_token", token, nx=False)
        except RedisError as exc:
            raise StoreError(f"writing a warm transfer failed: {exc}") from exc
