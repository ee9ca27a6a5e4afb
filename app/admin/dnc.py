"""The do-not-call list: numbers the dialer must never call.

Entries are keyed by ``phone_hash`` of the E.164 number (``{p}dnc:entries`` hash →
JSON ``{number_masked, reason, added_at_ms, added_by}``, ``{p}dnc:by_time`` zset for
listing), so Redis never holds the raw number. ``is_blocked(redis, keys, e164)`` is the
check the dialer makes before every attempt.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.admin.cursor import decode_cursor, encode_cursor
from app.errors import StoreError
from app.phone import mask, normalize
from app.store.keys import Keys, phone_hash
from app.store.redis import transact

_SHA = re.compile(r"^[0-9a-f]{64}$")


def entry_id(number: str) -> str:
    """The entry id (``phone_hash``) of a number in any dialable spelling.

    Raises ``ValueError`` when ``number`` is not a phone number (see ``app.phone.normalize``).
    """
    return phone_hash(normalize(number))


async def is_blocked(redis: aioredis.Redis, keys: Keys, e164: str) -> bool:
    """Whether ``e164`` is on the do-not-call list (one ``HEXISTS``).

    ``e164`` may be any spelling ``normalize`` accepts; something that is not a phone
    number is never blocked. Raises ``StoreError`` when Redis fails, so a caller can
    refuse to dial when it cannot check.
    """
    try:
        sha = entry_id(e164)
    except ValueError:
        return False
    try:
        return bool(await redis.hexists(keys.dnc_entries, sha))
    except RedisError as exc:
        raise StoreError(f"DNC check failed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class DncEntry:
    """One do-not-call entry. ``entry_id`` is the number's hash; times are epoch ms."""

    entry_id: str
    number_masked: str
    reason: str
    added_at_ms: int
    added_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "number_masked": self.number_masked,
            "reason": self.reason,
            "added_at_ms": self.added_at_ms,
            "added_by": self.added_by,
        }


def _entry(sha: str, raw: str | bytes) -> DncEntry:
    try:
        data = orjson.loads(raw)
        return DncEntry(
            entry_id=sha,
            number_masked=str(data.get("number_masked", "")),
            reason=str(data.get("reason", "")),
            added_at_ms=int(data.get("added_at_ms", 0)),
            added_by=str(data.get("added_by", "")),
        )
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"malformed DNC entry {sha}") from exc


class DncList:
    """Adds, removes, looks up and lists DNC entries. Raises ``StoreError`` on Redis failure."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    @staticmethod
    def resolve(number_or_id: str) -> str:
        """An entry id from an E.164 number or an entry id itself. Raises ``ValueError``."""
        value = number_or_id.strip()
        if _SHA.match(value):
            return value
        return entry_id(value)

    async def add(
        self, number: str, *, reason: str = "", added_by: str = ""
    ) -> tuple[DncEntry, bool]:
        """Block ``number``: ``(entry, created)``; an existing entry is kept as it was.

        Raises ``ValueError`` when ``number`` is not a phone number.
        """
        e164 = normalize(number)
        sha = phone_hash(e164)
        entry = DncEntry(
            entry_id=sha,
            number_masked=mask(e164),
            reason=reason,
            added_at_ms=time.time_ns() // 1_000_000,
            added_by=added_by,
        )
        payload = orjson.dumps(
            {k: v for k, v in entry.as_dict().items() if k != "entry_id"}
        ).decode()
        try:
            created = bool(await self.redis.hsetnx(self.keys.dnc_entries, sha, payload))
            if created:
                await self.redis.zadd(self.keys.dnc_by_time, {sha: entry.added_at_ms})
        except RedisError as exc:
            raise StoreError(f"DNC add failed: {exc}") from exc
        if not created:
            existing = await self.get(sha)
            if existing is not None:
                return existing, False
        return entry, created

    async def get(self, number_or_id: str) -> DncEntry | None:
        """The entry for a number or entry id, or None. Raises ``ValueError`` for junk."""
        sha = self.resolve(number_or_id)
        try:
            raw = await self.redis.hget(self.keys.dnc_entries, sha)
        except RedisError as exc:
            raise StoreError(f"DNC lookup failed: {exc}") from exc
        return _entry(sha, raw) if raw is not None else None

    async def remove(self, number_or_id: str) -> bool:
        """Unblock a number (or entry id); False when it was not listed."""
        sha = self.resolve(number_or_id)
        try:
            (removed,), _ = await transact(  # one MULTI (two on a Cluster: two slots)
                self.redis,
                [
                    lambda p: p.hdel(self.keys.dnc_entries, sha),
                    lambda p: p.zrem(self.keys.dnc_by_time, sha),
                ],
            )
        except RedisError as exc:
            raise StoreError(f"DNC remove failed: {exc}") from exc
        return bool(removed)

    async def count(self) -> int:
        try:
            return int(await self.redis.hlen(self.keys.dnc_entries))
        except RedisError as exc:
            raise StoreError(f"DNC count failed: {exc}") from exc

    async def page(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[DncEntry], str | None]:
        """Entries newest first: ``(entries, next_cursor)``; ``next_cursor`` None at the end.

        ``limit`` ≥ 1. Raises ``ValueError`` for a malformed cursor.
        """
        after = decode_cursor(cursor) if cursor else None
        top = str(after[0]) if after else "+inf"
        rows: list[tuple[str, int]] = []
        offset = 0
        try:
            while len(rows) <= limit:
                batch: list[Any] = await self.redis.zrevrangebyscore(
                    self.keys.dnc_by_time, top, "-inf", start=offset, num=limit + 1, withscores=True
                )
                if not batch:
                    break
                offset += len(batch)
                for member, score in batch:
                    if after and int(score) == after[0] and member >= after[1]:
                        continue  # covered by an earlier page
                    rows.append((member, int(score)))
            page = rows[:limit]
            raws = (
                await self.redis.hmget(self.keys.dnc_entries, [m for m, _ in page]) if page else []
            )
        except RedisError as exc:
            raise StoreError(f"DNC listing failed: {exc}") from exc
        entries = [_entry(m, raw) for (m, _), raw in zip(page, raws, strict=True) if raw]
        next_cursor = encode_cursor(page[-1][1], page[-1][0]) if len(rows) > limit else None
        return entries, next_cursor
