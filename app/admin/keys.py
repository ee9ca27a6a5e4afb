"""Admin API keys, operator-page sessions and the failed-auth limiter.

A key is ``sbk_<key_id>_<secret>``: ``key_id`` is 12 hex digits (public, names the key),
``secret`` 43 URL-safe base64 characters (256 random bits). Redis keeps only the
SHA-256 of the secret (``{p}admin:key:{key_id}``), so a leaked dump holds no usable key;
a fast hash is enough because the secret is random, not a password. Scopes: ``read``
(GET endpoints) and ``write`` (everything; implies read). Keys are revoked, not deleted,
so the audit trail stays; creating and revoking a key are audit entries
(``app.admin.audit``).

A login on the operator page creates a session (``{p}admin:session:{sha256(token)}``)
bound to one key; the browser holds the token in an HttpOnly cookie and the page holds
the session's CSRF token. A revoked key's sessions stop working at once (every request
re-reads the key).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.admin.audit import AuditLog, cli_actor
from app.errors import StoreError
from app.store.keys import Keys
from app.store.redis import transact

KEY_PREFIX = "sbk_"
_KEY_RE = re.compile(r"^sbk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME_RE = re.compile(r"^[\w .@:/+-]{1,64}$")
#: ``last_used_ms`` is refreshed at most this often (ms) to keep reads cheap.
_TOUCH_EVERY_MS = 60_000


class Scope(StrEnum):
    """What a key may do: ``read`` (list and look) or ``write`` (also change; implies read)."""

    read = "read"
    write = "write"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_key(raw: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed ``sbk_…`` key, else None."""
    m = _KEY_RE.match(raw.strip())
    return (m.group(1), m.group(2)) if m else None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One admin key as stored (never with its secret). Times are epoch ms."""

    key_id: str
    name: str
    scope: Scope
    created_at_ms: int
    last_used_ms: int | None = None
    revoked_at_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at_ms is None

    def allows(self, scope: Scope) -> bool:
        """Whether this key may act with ``scope`` (``write`` implies ``read``)."""
        return self.scope is Scope.write or scope is Scope.read


@dataclass(frozen=True, slots=True)
class Session:
    """An operator-page login: the key it was made with and its CSRF token."""

    key: ApiKey
    csrf: str


def _opt_int(raw: dict[str, str], name: str) -> int | None:
    value = raw.get(name)
    return int(value) if value else None


def _key_from(raw: dict[str, str]) -> ApiKey:
    try:
        return ApiKey(
            key_id=raw["key_id"],
            name=raw.get("name", ""),
            scope=Scope(raw["scope"]),
            created_at_ms=int(raw["created_at_ms"]),
            last_used_ms=_opt_int(raw, "last_used_ms"),
            revoked_at_ms=_opt_int(raw, "revoked_at_ms"),
        )
    except (KeyError, ValueError) as exc:
        raise StoreError(f"malformed admin key record: {sorted(raw)}") from exc


class ApiKeys:
    """Creates, lists, revokes and verifies admin keys; opens and checks sessions.

    Every method raises ``StoreError`` when Redis fails.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        session_ttl_s: int = 43200,
        audit: AuditLog | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.session_ttl_s = session_ttl_s
        #: Where key creation and revocation are recorded (the audit trail).
        self.audit = audit or AuditLog(redis, keys)

    async def _call(self, op: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as exc:
            raise StoreError(f"{op} failed: {exc}") from exc

    # --- keys -------------------------------------------------------------------------

    async def create(
        self, name: str, scope: Scope | str, *, actor: str | None = None
    ) -> tuple[ApiKey, str]:
        """Make a key; returns it and the full ``sbk_…`` string (shown once, never stored).

        ``name`` (1-64 letters, digits, space or ``_.@:/+-``) labels it for people.
        ``actor`` (default ``cli:user@host``) is who the audit trail names. Raises
        ``ValueError`` for a bad name or scope.
        """
        if not _NAME_RE.match(name):
            raise ValueError("key name must be 1-64 letters, digits, spaces or _.@:/+-")
        scope = Scope(scope)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id=key_id, name=name, scope=scope, created_at_ms=_now_ms())
        record = {
            "key_id": key_id,
            "name": name,
            "scope": scope.value,
            "secret_sha256": _sha256(secret),
            "created_at_ms": str(key.created_at_ms),
        }
        await self._call(
            "create key",
            transact(  # one MULTI (one per slot on a Cluster: the key, the list)
                self.redis,
                [
                    lambda p: p.hset(self.keys.admin_key(key_id), mapping=record),
                    lambda p: p.zadd(self.keys.admin_keys, {key_id: key.created_at_ms}),
                ],
            ),
        )
        await self.audit.record(
            action="key.create",
            actor=actor or cli_actor(),
            via="cli" if actor is None else "",
            ip="local" if actor is None else "",
            target=key_id,
            detail={"name": name, "scope": scope.value},
        )
        return key, f"{KEY_PREFIX}{key_id}_{secret}"

    async def get(self, key_id: str) -> ApiKey | None:
        raw = await self._call("get key", self.redis.hgetall(self.keys.admin_key(key_id)))
        return _key_from(raw) if raw else None

    async def list(self) -> list[ApiKey]:
        """Every key, oldest first (revoked ones included)."""
        ids: list[str] = await self._call(
            "list keys", self.redis.zrange(self.keys.admin_keys, 0, -1)
        )
        out = []
        for key_id in ids:
            key = await self.get(key_id)
            if key is not None:
                out.append(key)
        return out

    async def revoke(self, key_id: str, *, actor: str | None = None) -> ApiKey | None:
        """Revoke a key (idempotent; recorded in the audit trail once). Returns it, or
        None when there is no such key."""
        key = await self.get(key_id)
        if key is None:
            return None
        if key.revoked_at_ms is None:
            now = _now_ms()
            await self._call(
                "revoke key",
                self.redis.hset(self.keys.admin_key(key_id), "revoked_at_ms", str(now)),
            )
            await self.audit.record(
                action="key.revoke",
                actor=actor or cli_actor(),
                via="cli" if actor is None else "",
                ip="local" if actor is None else "",
                target=key_id,
                detail={"name": key.name, "scope": key.scope.value},
            )
            key = await self.get(key_id)
        return key

    async def verify(self, raw: str) -> tuple[ApiKey | None, str]:
        """Check a presented key: ``(key, "ok")`` or ``(None, reason)``.

        ``reason`` is ``malformed``, ``unknown``, ``bad_secret`` or ``revoked`` (for logs
        and metrics; clients only ever learn "invalid").
        """
        parsed = parse_key(raw)
        if parsed is None:
            return None, "malformed"
        key_id, secret = parsed
        stored = await self._call("verify key", self.redis.hgetall(self.keys.admin_key(key_id)))
        presented = _sha256(secret)
        if not stored:
            hmac.compare_digest(presented, presented)  # same work as a real comparison
            return None, "unknown"
        if not hmac.compare_digest(presented, stored.get("secret_sha256", "")):
            return None, "bad_secret"
        key = _key_from(stored)
        if not key.active:
            return None, "revoked"
        await self._touch(key)
        return key, "ok"

    async def _touch(self, key: ApiKey) -> None:
        now = _now_ms()
        if key.last_used_ms is None or now - key.last_used_ms > _TOUCH_EVERY_MS:
            await self._call(
                "touch key", self.redis.hset(self.keys.admin_key(key.key_id), "last_used_ms", now)
            )

    # --- operator-page sessions -------------------------------------------------------

    async def open_session(self, key: ApiKey) -> tuple[str, str]:
        """Start a session for ``key``: returns ``(cookie_token, csrf_token)``."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        name = self.keys.admin_session(_sha256(token))
        record = {"key_id": key.key_id, "csrf": csrf, "created_at_ms": str(_now_ms())}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping=record)  # type: ignore[arg-type]
            pipe.expire(name, self.session_ttl_s)
            await self._call("open session", pipe.execute())
        return token, csrf

    async def session(self, token: str) -> Session | None:
        """The live session for a cookie token, or None (unknown, expired, key revoked)."""
        if not token or len(token) > 128:
            return None
        raw = await self._call(
            "read session", self.redis.hgetall(self.keys.admin_session(_sha256(token)))
        )
        if not raw or "key_id" not in raw:
            return None
        key = await self.get(raw["key_id"])
        if key is None or not key.active:
            return None
        await self._touch(key)
        return Session(key=key, csrf=raw.get("csrf", ""))

    async def close_session(self, token: str) -> None:
        """End a session (logout); unknown tokens are ignored."""
        if token and len(token) <= 128:
            await self._call(
                "close session", self.redis.delete(self.keys.admin_session(_sha256(token)))
            )


class FailureLimiter:
    """Counts failed auth attempts per client IP in fixed windows of ``window_s`` seconds.

    ``blocked(ip)`` is the seconds until the window ends once ``max_failures`` were
    reached, else None. Raises ``StoreError`` when Redis fails.
    """

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, *, max_failures: int, window_s: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.max_failures = max_failures
        self.window_s = window_s

    async def blocked(self, ip: str) -> int | None:
        name = self.keys.admin_auth_failures(ip)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(name)
                pipe.ttl(name)
                count, ttl = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"auth limiter failed: {exc}") from exc
        if count is not None and int(count) >= self.max_failures:
            return max(1, int(ttl)) if ttl and int(ttl) > 0 else self.window_s
        return None

    async def record_failure(self, ip: str) -> int:
        """Count one failure; returns the count in the current window."""
        name = self.keys.admin_auth_failures(ip)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, self.window_s, nx=True)
                count, _ = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"auth limiter failed: {exc}") from exc
        return int(count)
