"""The audit trail: every admin write, appended to one Redis stream.

``{p}audit`` holds one entry per write (hang-up, transfer, say, flow reload, DNC add and
remove, campaign changes, operator-page login and logout, API key create and revoke)::

    at_ms, actor ("name (key_id)" or "cli:user@host"), key_id, via (header|session|cli),
    ip, action ("call.transfer"), method, path, target (call SID, campaign id, …),
    status (HTTP status, or 0 for the CLI), detail (JSON object, numbers masked)

Entries older than the retention are trimmed on every append (``XADD … MINID ~``) and the
stream is capped at ``max_entries`` (``XTRIM MAXLEN ~``), so neither time nor a flood
grows it without bound. ``GET /admin/audit`` lists it newest first.
"""

from __future__ import annotations

import getpass
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from app.errors import StoreError
from app.store.calls import redact_numbers
from app.store.keys import Keys

#: Default retention when no settings are at hand (the CLI's key commands).
DEFAULT_RETENTION_S = 365 * 86400
#: Most entries kept whatever their age.
DEFAULT_MAX_ENTRIES = 1_000_000
#: Longest ``detail`` stored (characters of JSON).
MAX_DETAIL_CHARS = 2000
_ENTRY_ID = r"^[0-9]{1,20}-[0-9]{1,20}$"


def cli_actor() -> str:
    """``cli:<user>@<host>``: who ran a command-line write."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"[:120]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit entry as stored; ``id`` is the stream id (``<ms>-<n>``)."""

    id: str
    at_ms: int
    actor: str
    key_id: str
    via: str
    ip: str
    action: str
    method: str
    path: str
    target: str
    status: int
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at_ms": self.at_ms,
            "actor": self.actor,
            "key_id": self.key_id,
            "via": self.via,
            "ip": self.ip,
            "action": self.action,
            "method": self.method,
            "path": self.path,
            "target": self.target,
            "status": self.status,
            "detail": self.detail,
        }


def _entry(entry_id: str, f: dict[str, str]) -> AuditEntry:
    try:
        detail = orjson.loads(f.get("detail") or "{}")
    except orjson.JSONDecodeError:
        detail = {"raw": f.get("detail", "")}
    try:
        return AuditEntry(
            id=entry_id,
            at_ms=int(f.get("at_ms", 0)),
            actor=f.get("actor", ""),
            key_id=f.get("key_id", ""),
            via=f.get("via", ""),
            ip=f.get("ip", ""),
            action=f.get("action", ""),
            method=f.get("method", ""),
            path=f.get("path", ""),
            target=f.get("target", ""),
            status=int(f.get("status", 0)),
            detail=detail if isinstance(detail, dict) else {"value": detail},
        )
    except ValueError as exc:
        raise StoreError(f"malformed audit entry {entry_id}") from exc


class AuditLog:
    """Appends to and lists ``{p}audit``. Every method raises ``StoreError`` when Redis
    fails. ``retention_s``: age beyond which entries are trimmed (≥ 1)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        retention_s: int = DEFAULT_RETENTION_S,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if retention_s < 1:
            raise ValueError("retention_s must be at least 1 second")
        self.redis = redis
        self.keys = keys
        self.retention_s = retention_s
        self.max_entries = max_entries

    async def record(
        self,
        *,
        action: str,
        actor: str,
        key_id: str = "",
        via: str = "",
        ip: str = "",
        method: str = "",
        path: str = "",
        target: str = "",
        status: int = 0,
        detail: dict[str, Any] | None = None,
    ) -> str:
        """Append one entry (E.164 numbers anywhere in it are masked); returns its id."""
        now = time.time_ns() // 1_000_000
        detail_json = redact_numbers(orjson.dumps(detail or {}, default=str).decode())
        if len(detail_json) > MAX_DETAIL_CHARS:
            detail_json = orjson.dumps({"truncated": detail_json[:MAX_DETAIL_CHARS]}).decode()
        fields: dict[str, str | int] = {
            "at_ms": now,
            "actor": actor[:200],
            "key_id": key_id[:64],
            "via": via[:16],
            "ip": ip[:64],
            "action": action[:64],
            "method": method[:8],
            "path": redact_numbers(path[:300]),
            "target": redact_numbers(target[:200]),
            "status": int(status),
            "detail": detail_json,
        }
        oldest = max(0, now - self.retention_s * 1000)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.keys.audit,
                    fields,  # type: ignore[arg-type]
                    minid=f"{oldest}-0",
                    approximate=False,  # exact: retention is a promise
                )
                pipe.xtrim(self.keys.audit, maxlen=self.max_entries, approximate=True)
                pipe.expire(self.keys.audit, self.retention_s)
                entry_id, _, _ = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"audit append failed: {exc}") from exc
        return str(entry_id)

    async def page(
        self, *, limit: int = 100, before: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """Entries newest first, older than the entry id ``before`` when given:
        ``(entries, next_before)``; ``next_before`` is None at the end. Raises
        ``ValueError`` for a malformed ``before``."""
        import re

        if before is not None and not re.match(_ENTRY_ID, before):
            raise ValueError("before must be an audit entry id (<ms>-<n>)")
        top = f"({before}" if before else "+"
        try:
            rows: list[Any] = await self.redis.xrevrange(  # type: ignore[assignment]
                self.keys.audit, max=top, min="-", count=limit + 1
            )
        except ResponseError as exc:
            raise ValueError(f"bad position: {exc}") from None
        except RedisError as exc:
            raise StoreError(f"audit listing failed: {exc}") from exc
        entries = [_entry(str(i), dict(f or {})) for i, f in rows[:limit]]
        next_before = entries[-1].id if len(rows) > limit and entries else None
        return entries, next_before
