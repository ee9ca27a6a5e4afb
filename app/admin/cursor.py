"""Opaque pagination cursors: a position ``(score, member)`` in a sorted set.

Listings go newest first (descending score, ties by descending member); a cursor names
the last position a page covered, so the next page starts strictly after it even when
entries were added or removed in between. The token is URL-safe base64 of
``v1:<score>:<member>``; clients must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import re

_MEMBER = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")


def encode_cursor(score: int, member: str) -> str:
    raw = f"v1:{int(score)}:{member}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, str]:
    """``(score, member)`` of a cursor from ``encode_cursor``. Raises ``ValueError``."""
    if not token or len(token) > 256:
        raise ValueError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, score, member = raw.split(":", 2)
        value = int(score)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    if version != "v1" or not _MEMBER.match(member) or not 0 <= value < 2**53:
        raise ValueError("invalid cursor")
    return value, member
