"""HTTP byte ranges (RFC 9110 §14) over an object in the recordings store: one
``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range gets a 206 with ``Content-Range``; a
range past the end gets a 416 with ``Content-Range: bytes */size``; no (or a multi-)
range gets the whole object with ``Accept-Ranges: bytes``."""

from __future__ import annotations

import asyncio
import re

from fastapi import Response

from app.api.errors import ApiError
from app.store.objects import ObjectStore

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single-range ``Range`` header, None for the
    whole object. Raises ``ApiError(416)`` for an unsatisfiable range."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None  # not a single byte range: RFC 9110 lets us send it all
    first, last = m.group(1), m.group(2)
    if not first:
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(size - 1, int(last)) if last else size - 1
    if start >= size or start > end:
        raise ApiError(416, "range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end


async def object_response(
    store: ObjectStore, key: str, range_header: str | None, media_type: str
) -> Response:
    """The object (or the requested range of it). Raises ``ApiError(404)`` when absent."""
    size = await asyncio.to_thread(store.size, key)
    if size is None:
        raise ApiError(404, "no recording of this call")
    rng = parse_range(range_header, size)
    start, end = rng if rng is not None else (0, size - 1)
    body = await asyncio.to_thread(store.read, key, start, end) if size else b""
    headers = {"Accept-Ranges": "bytes"}
    if rng is None:
        return Response(body, media_type=media_type, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(body, status_code=206, media_type=media_type, headers=headers)
