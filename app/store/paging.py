"""Cursor pages over sorted sets and streams (the admin listings' ``next_cursor``).

A cursor is ``app.admin.cursor``'s opaque token for a position ``(score, member)``; a
page starts strictly after it, so nothing repeats or is skipped while entries come and
go. Streams page by entry id (``<ms>-<n>`` is the position ``(ms, n)``).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.admin.cursor import decode_cursor, encode_cursor
from app.errors import StoreError


async def zset_page(
    redis: aioredis.Redis,
    key: str,
    *,
    cursor: str | None,
    limit: int,
    newest_first: bool = True,
) -> tuple[list[tuple[str, int]], str | None]:
    """``([(member, score), …], next_cursor)`` of one page of the sorted set ``key``
    (integer scores, e.g. epoch ms), by descending score (``newest_first``) or ascending;
    ties by member in the same direction. Raises ``ValueError`` for a bad cursor and
    ``StoreError`` when Redis fails."""
    after = decode_cursor(cursor) if cursor else None
    rows: list[tuple[str, int]] = []
    offset = 0
    try:
        while len(rows) <= limit:
            if newest_first:
                top = str(after[0]) if after else "+inf"
                batch: list[Any] = await redis.zrevrangebyscore(
                    key, top, "-inf", start=offset, num=limit + 1, withscores=True
                )
            else:
                bottom = str(after[0]) if after else "-inf"
                batch = await redis.zrangebyscore(
                    key, bottom, "+inf", start=offset, num=limit + 1, withscores=True
                )
            if not batch:
                break
            offset += len(batch)
            for member, score in batch:
                value = int(score)
                if after and value == after[0]:
                    if newest_first and member >= after[1]:
                        continue  # covered by an earlier page
                    if not newest_first and member <= after[1]:
                        continue
                rows.append((str(member), value))
    except RedisError as exc:
        raise StoreError(f"listing {key} failed: {exc}") from exc
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][1], page[-1][0]) if len(rows) > limit and page else None
    return page, next_cursor


async def stream_page(
    redis: aioredis.Redis, key: str, *, cursor: str | None, limit: int
) -> tuple[list[tuple[str, dict[str, str]]], str | None]:
    """``([(entry_id, fields), …], next_cursor)``: one page of a stream, newest first.
    Raises ``ValueError`` for a bad cursor and ``StoreError`` when Redis fails."""
    top = "+"
    if cursor:
        ms, seq = decode_cursor(cursor)
        if not seq.isdigit():
            raise ValueError("invalid cursor")
        top = f"({ms}-{seq}"
    try:
        rows: Any = await redis.xrevrange(key, max=top, min="-", count=limit + 1)
    except RedisError as exc:
        raise StoreError(f"listing {key} failed: {exc}") from exc
    entries = [(str(i), dict(f or {})) for i, f in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and entries:
        last_ms, last_seq = entries[-1][0].split("-", 1)
        next_cursor = encode_cursor(int(last_ms), last_seq)
    return entries, next_cursor
