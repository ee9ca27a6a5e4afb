"""Cursor paging for listings kept in sorted sets and streams, and the shared query parameters.

Every list endpoint answers ``Page`` (``{"items", "next_cursor"}``, ``app.admin.schemas``)
and takes ``cursor`` (a ``next_cursor`` it gave out) and ``limit``; the pages come from
``app.store.paging`` (positions that never repeat or skip an entry while others are added
or removed), a bad cursor is 422 ``invalid_cursor``.
"""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Query

from app.admin.cursor import decode_cursor
from app.api.errors import ApiError
from app.store import paging

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
    """``app.store.paging.zset_page``, a bad cursor answered 422 ``invalid_cursor``.
    Raises ``ApiError`` and ``StoreError``."""
    try:
        return await paging.zset_page(
            redis, key, cursor=cursor, limit=limit, newest_first=newest_first
        )
    except ValueError as exc:
        raise invalid_cursor(exc) from None


async def stream_page(
    redis: aioredis.Redis, key: str, *, cursor: str | None, limit: int
) -> tuple[list[tuple[str, dict[str, str]]], str | None]:
    """``app.store.paging.stream_page``, a bad cursor answered 422 ``invalid_cursor``."""
    try:
        return await paging.stream_page(redis, key, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise invalid_cursor(exc) from None
