"""Webhook subscriptions in Redis, their delivery logs, and where a webhook may go.

A subscription (``{p}{ev}:webhooks`` hash, JSON per id ``wh_<12 hex>``) holds its URL,
event types, signing secret, description and whether it is enabled. The secret is
shown when the subscription is made (or its secret replaced) and never again: listings
show ``secret_hint`` (its last four characters).

``check_url`` and ``destination_refusal`` keep webhooks to the destinations the
``webhook_destinations`` policy allows (``public`` in production: no loopback, private,
link-local, multicast or reserved address, so a subscription cannot reach into the
network Switchboard runs in); the delivery checks the resolved addresses again before
each request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import StoreError
from app.events import EVENT_TYPES
from app.store.event_keys import EventKeys
from app.store.paging import stream_page, zset_page
from app.webhooks.signing import SECRET_PREFIX, new_secret

Policy = Literal["public", "loopback", "any"]
#: Longest URL accepted.
MAX_URL = 2048
#: ``events`` value meaning "every event type".
ALL_EVENTS = "*"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def check_url(url: str, policy: Policy) -> None:
    """Raise ``ValueError`` unless ``url`` is an absolute http(s) URL without credentials
    whose host, when it is an IP literal, the policy allows (names are checked when
    resolved, at delivery)."""
    if len(url) > MAX_URL:
        raise ValueError(f"URL longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise ValueError("the URL must not carry credentials")
    if port == 0:
        raise ValueError("port 0 is not a destination")
    if any(c.isspace() for c in url):
        raise ValueError("the URL must not contain spaces")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        if policy == "loopback" and parts.hostname != "localhost":
            raise ValueError("webhooks may only go to loopback addresses here") from None
        return
    refusal = address_refusal(address, policy)
    if refusal:
        raise ValueError(refusal)


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: Policy) -> str:
    """Why the policy refuses ``address`` ("" when it allows it)."""
    if policy == "any":
        return ""
    if policy == "loopback":
        return "" if address.is_loopback else "webhooks may only go to loopback addresses here"
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if not address.is_global or address.is_multicast:
        return f"webhooks may not go to {address} (not a public address)"
    return ""


async def destination_refusal(url: str, policy: Policy) -> str:
    """Why a delivery to ``url`` must not be made now ("" when it may): every address
    its host resolves to must be allowed."""
    if policy == "any":
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        refusal = address_refusal(ipaddress.ip_address(info[4][0]), policy)
        if refusal:
            return refusal
    return "" if infos else f"{host} has no address"


def check_events(events: list[str]) -> list[str]:
    """The event types, deduplicated and sorted; ``["*"]`` for all. Raises ``ValueError``
    for an unknown type or an empty list."""
    wanted = sorted(set(events))
    if not wanted:
        raise ValueError("name at least one event type (or '*')")
    if ALL_EVENTS in wanted:
        return [ALL_EVENTS]
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type(s) {unknown}; known: {list(EVENT_TYPES)}")
    return wanted


@dataclass(frozen=True, slots=True)
class Subscription:
    """One webhook subscription as stored. Times are epoch ms."""

    id: str
    url: str
    events: list[str]
    secret: str
    description: str = ""
    enabled: bool = True
    created_at_ms: int = 0
    updated_at_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events

    @property
    def secret_hint(self) -> str:
        return f"{SECRET_PREFIX}…{self.secret[-4:]}" if self.secret else ""

    def as_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "url": self.url,
                "events": self.events,
                "secret": self.secret,
                "description": self.description,
                "enabled": self.enabled,
                "created_at_ms": self.created_at_ms,
                "updated_at_ms": self.updated_at_ms,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Subscription:
        try:
            data = orjson.loads(raw)
            return cls(
                id=str(data["id"]),
                url=str(data["url"]),
                events=[str(e) for e in data.get("events") or []],
                secret=str(data.get("secret", "")),
                description=str(data.get("description", "")),
                enabled=bool(data.get("enabled", True)),
                created_at_ms=int(data.get("created_at_ms", 0)),
                updated_at_ms=int(data.get("updated_at_ms", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"malformed webhook subscription: {exc}") from exc


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One delivery attempt in a subscription's log."""

    id: str
    at_ms: int
    event_id: str
    type: str
    attempt: int
    outcome: str
    status: int
    error: str
    duration_ms: float
    next_at_ms: int | None

    @classmethod
    def from_fields(cls, entry_id: str, f: dict[str, str]) -> LogEntry:
        def num(name: str) -> int:
            try:
                return int(f.get(name) or 0)
            except ValueError:
                return 0

        try:
            duration = float(f.get("duration_ms") or 0)
        except ValueError:
            duration = 0.0
        return cls(
            id=entry_id,
            at_ms=num("at_ms"),
            event_id=f.get("event_id", ""),
            type=f.get("type", ""),
            attempt=num("attempt"),
            outcome=f.get("outcome", ""),
            status=num("status"),
            error=f.get("error", ""),
            duration_ms=duration,
            next_at_ms=num("next_at_ms") or None,
        )


class WebhookStore:
    """Subscriptions and delivery logs. Every method raises ``StoreError`` when Redis
    fails; ``create``/``update`` raise ``ValueError`` for bad input."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: EventKeys,
        *,
        policy: Policy = "public",
        max_subscriptions: int = 100,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.policy = policy
        self.max_subscriptions = max_subscriptions

    async def _run(self, op: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as exc:
            raise StoreError(f"{op} failed: {exc}") from exc

    async def create(
        self,
        url: str,
        events: list[str],
        *,
        description: str = "",
        secret: str | None = None,
        enabled: bool = True,
    ) -> Subscription:
        """Store a new subscription (its secret generated unless given)."""
        check_url(url, self.policy)
        wanted = check_events(events)
        count = await self._run("count webhooks", self.redis.hlen(self.keys.webhooks))
        if count >= self.max_subscriptions:
            raise ValueError(f"at most {self.max_subscriptions} webhook subscriptions")
        now = _now_ms()
        sub = Subscription(
            id="wh_" + secrets.token_hex(6),
            url=url,
            events=wanted,
            secret=secret or new_secret(),
            description=description,
            enabled=enabled,
            created_at_ms=now,
            updated_at_ms=now,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.webhooks, sub.id, sub.as_json())
            pipe.zadd(self.keys.webhooks_by_time, {sub.id: now})
            await self._run("create webhook", pipe.execute())
        return sub

    async def get(self, sub_id: str) -> Subscription | None:
        raw = await self._run("get webhook", self.redis.hget(self.keys.webhooks, sub_id))
        return Subscription.from_json(raw) if raw else None

    async def all(self) -> list[Subscription]:
        """Every subscription (for the fan-out)."""
        raw: dict[str, str] = await self._run(
            "list webhooks", self.redis.hgetall(self.keys.webhooks)
        )
        return [Subscription.from_json(v) for v in raw.values()]

    async def page(
        self, *, cursor: str | None, limit: int
    ) -> tuple[list[Subscription], str | None]:
        """Subscriptions newest first. Raises ``ValueError`` for a bad cursor."""
        rows, next_cursor = await zset_page(
            self.redis, self.keys.webhooks_by_time, cursor=cursor, limit=limit
        )
        ids = [sub_id for sub_id, _ in rows]
        raws = (
            await self._run("get webhooks", self.redis.hmget(self.keys.webhooks, ids))
            if ids
            else []
        )
        return [Subscription.from_json(r) for r in raws if r], next_cursor

    async def update(
        self,
        sub_id: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        secret: str | None = None,
    ) -> Subscription | None:
        """Change what is given; None when there is no such subscription."""
        sub = await self.get(sub_id)
        if sub is None:
            return None
        if url is not None:
            check_url(url, self.policy)
        changed = Subscription(
            id=sub.id,
            url=url if url is not None else sub.url,
            events=check_events(events) if events is not None else sub.events,
            secret=secret if secret is not None else sub.secret,
            description=description if description is not None else sub.description,
            enabled=enabled if enabled is not None else sub.enabled,
            created_at_ms=sub.created_at_ms,
            updated_at_ms=_now_ms(),
        )
        await self._run(
            "update webhook", self.redis.hset(self.keys.webhooks, sub_id, changed.as_json())
        )
        return changed

    async def delete(self, sub_id: str) -> bool:
        """Remove a subscription and its log; its pending deliveries are dropped when
        they come up. False when there was none."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.webhooks, sub_id)
            pipe.zrem(self.keys.webhooks_by_time, sub_id)
            pipe.delete(self.keys.webhook_log(sub_id))
            removed, _, _ = await self._run("delete webhook", pipe.execute())
        return bool(removed)

    async def log_page(
        self, sub_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[LogEntry], str | None]:
        """A subscription's delivery log, newest first. Raises ``ValueError`` for a bad
        cursor."""
        rows, next_cursor = await stream_page(
            self.redis, self.keys.webhook_log(sub_id), cursor=cursor, limit=limit
        )
        return [LogEntry.from_fields(i, f) for i, f in rows], next_cursor
