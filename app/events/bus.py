"""``EventBus``: append events to ``{p}{ev}:events`` (see ``app.events``).

An event is a JSON envelope ``{"id": "evt_<24 hex>", "type": "call.ended",
"created_at_ms": 1767225600000, "data": {...}}``, stored as the stream entry's ``body``
(with ``id``, ``type`` and ``at_ms`` beside it for consumers that only route). The
envelope is what a webhook receiver gets, byte for byte.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import StoreError
from app.phone import mask
from app.store.event_keys import EventKeys

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.calls import CallStore

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = (
    "call.started",
    "call.ended",
    "call.analyzed",
    "transfer.completed",
    "campaign.contact_finished",
    "campaign.finished",
)
#: Events kept when no settings are at hand.
DEFAULT_MAXLEN = 100_000
#: How long a "sent once" marker lives when no settings are at hand (s).
DEFAULT_ONCE_TTL_S = 30 * 86400

# KEYS[1] once-marker, KEYS[2] events stream; ARGV: ttl_s, maxlen, then field/value pairs.
# Appends only when the marker was not set: an event is emitted once per subject.
_EMIT_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local fields = {}
  for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
end
return false
"""


@dataclass(frozen=True, slots=True)
class Event:
    """One event as read back from the stream."""

    id: str
    type: str
    created_at_ms: int
    data: dict[str, Any]
    #: The JSON envelope as stored (what webhook receivers get).
    body: bytes
    #: The stream entry id (``<ms>-<n>``).
    entry_id: str = ""

    @classmethod
    def from_fields(cls, entry_id: str, fields: dict[str, str]) -> Event:
        """Parse a stream entry. Raises ``ValueError`` for a malformed one."""
        body = fields.get("body", "")
        try:
            envelope = orjson.loads(body)
            return cls(
                id=str(envelope["id"]),
                type=str(envelope["type"]),
                created_at_ms=int(envelope["created_at_ms"]),
                data=dict(envelope.get("data") or {}),
                body=body.encode(),
                entry_id=entry_id,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed event {entry_id}: {exc}") from None


def envelope(event_type: str, data: dict[str, Any], now_ms: int | None = None) -> Event:
    """A new event (not stored)."""
    created = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    event_id = "evt_" + secrets.token_hex(12)
    body = orjson.dumps(
        {"id": event_id, "type": event_type, "created_at_ms": created, "data": data}
    )
    return Event(id=event_id, type=event_type, created_at_ms=created, data=data, body=body)


class EventBus:
    """Appends events. Every method raises ``StoreError`` when Redis fails (a caller on a
    call's path submits it through the call's store writer, which retries and never
    blocks the call)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: EventKeys,
        *,
        maxlen: int = DEFAULT_MAXLEN,
        once_ttl_s: int = DEFAULT_ONCE_TTL_S,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.once_ttl_s = once_ttl_s
        self._emit_once = redis.register_script(_EMIT_ONCE)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, settings: Settings) -> EventBus:
        return cls(
            redis,
            EventKeys(settings.redis_prefix),
            maxlen=settings.events_stream_max,
            once_ttl_s=max(86400, settings.retention_days * 86400),
        )

    @staticmethod
    def _fields(event: Event) -> dict[str, str]:
        return {
            "id": event.id,
            "type": event.type,
            "at_ms": str(event.created_at_ms),
            "body": event.body.decode(),
        }

    async def emit(self, event_type: str, data: dict[str, Any]) -> Event:
        """Append an event now; returns it."""
        event = envelope(event_type, data)
        try:
            await self.redis.xadd(
                self.keys.events,
                self._fields(event),  # type: ignore[arg-type]
                maxlen=self.maxlen,
                approximate=True,
            )
        except RedisError as exc:
            raise StoreError(f"event append failed: {exc}") from exc
        log.info("event %s %s", event.type, event.id)
        return event

    async def emit_once(self, event_type: str, subject: str, data: dict[str, Any]) -> Event | None:
        """Append an event unless one of this type was emitted for ``subject`` already;
        returns it, or None when it was a repeat."""
        event = envelope(event_type, data)
        args: list[str | int] = [self.once_ttl_s, self.maxlen]
        for name, value in self._fields(event).items():
            args += [name, value]
        try:
            added = await self._emit_once(
                keys=[self.keys.once(event_type, subject), self.keys.events], args=args
            )
        except RedisError as exc:
            raise StoreError(f"event append failed: {exc}") from exc
        if not added:
            return None
        log.info("event %s %s (%s)", event.type, event.id, subject)
        return event


class _CallDeps(Protocol):
    """What ``call_event`` needs from the caller's dependencies (``Services`` or a
    call's deps): the settings and the call store."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> CallStore: ...


_NUMBER_FIELDS = frozenset({"to", "from", "number", "to_number", "from_number"})
_CALL_FIELDS = (
    "direction",
    "flow",
    "from_masked",
    "to_masked",
    "campaign",
    "status",
    "started_at_ms",
    "ended_at_ms",
    "end_reason",
)


async def call_event(deps: _CallDeps, event_type: str, call_sid: str, **data: Any) -> None:
    """Emit a call's event once (``call.started``, ``call.ended``, ``transfer.completed``),
    its data filled from the call record, phone numbers in ``data`` masked (a ``to``
    becomes ``to_masked``).

    Made to be submitted through the call's store writer, which runs it off the call's
    path with retries::

        writer.submit(lambda: call_event(deps, "call.ended", sid, reason=r, outcome=o))

    Raises ``StoreError`` (the writer retries) and ``ValueError`` for an unknown type.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    record = await deps.store.get_call(call_sid) or {}
    payload: dict[str, Any] = {"call_sid": call_sid}
    for name in _CALL_FIELDS:
        value = record.get(name)
        if value not in (None, ""):
            payload[name] = value
    started, ended = record.get("created_at_ms"), record.get("ended_at_ms")
    if event_type == "call.ended":
        payload.setdefault("ended_at_ms", time.time_ns() // 1_000_000)
        ended = payload["ended_at_ms"]
        if isinstance(started, int) and isinstance(ended, int):
            payload["duration_s"] = round(max(0, ended - started) / 1000, 1)
    for name, value in data.items():
        if name in _NUMBER_FIELDS:
            payload[f"{name.removesuffix('_number')}_masked"] = mask(str(value))
        elif name == "reason" and event_type == "call.ended":
            payload["end_reason"] = value
        else:
            payload[name] = value
    bus = EventBus.from_settings(deps.store.redis, deps.settings)
    await bus.emit_once(event_type, call_sid, payload)
