"""Cursor paging for listings kept in sorted sets, and the shared query parameters.

Every list endpoint answers ``Page`` (``{"items", "next_cursor"}``, ``app.admin.schemas``)
and takes ``cursor`` (a ``next_cursor`` it gave out) and ``limit``. ``zset_page`` pages a
sorted set by ``(score, member)`` positions (``app.admin.cursor``), so a page never
repeats or skips an entry while others are added or removed.
"""

from __future__ import annotations

from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Query
from redis.exceptions import RedisError

from app.admin.cursor import decode_cursor, encode_cursor
from app.api.errors import ApiError
from app.errors import StoreError

#: The ``cursor`` query parameter of every listing.
CursorParam = Annotated[
    str | None,
    Query(max_length=256, description="`next_cursor` of the previous page (opaque)"),
]


def invalid_cursor(exc: ValueError) -> ApiError:
    """422 ``invalid_cursor`` (or ``validation_error`` for other bad values)."""
    text = str(exc)
    code = "invalid_cursor" if "cursor" in text else "validation_error"
    return ApiError(422, text, code=code)


def parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    """The position of a cursor, or None. Raises ``ApiError`` 422 ``invalid_cursor``."""
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError as exc:
        raise invalid_cursor(exc) from None


async def zset_page(
    redis: aioredis.Redis,
    key: str,
    *,
    cursor: str | None,
    limit: int,
    newest_first: bool = True,
) -> tuple[list[tuple[str, int]], str | None]:
    """``([(member, score), …], next_cursor)`` of one page of the sorted set ``key``
    (scores are integers, e.g. epoch ms), by descending score (``newest_first``) or
    ascending. Ties go by member in the same direction. Raises ``ApiError`` 422 for a
    bad cursor and ``StoreError`` when Redis fails."""
    after = parse_cursor(cursor)
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
