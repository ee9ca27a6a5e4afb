"""The ``Switchboard-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

``v1`` is HMAC-SHA256, keyed with the subscription's secret, over the bytes
``f"{t}."`` followed by the raw request body (the same scheme as Stripe's
``Stripe-Signature``). A receiver recomputes it over the body it received, compares in
constant time and refuses a ``t`` too far from its clock (replays). RFC 2104 (HMAC),
FIPS 180-4 (SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "Switchboard-Signature"
#: Default tolerance between ``t`` and the receiver's clock (seconds).
TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + 43 URL-safe characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}."`` + ``body`` under ``secret``."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body``: ``t=…,v1=…`` (``timestamp`` default: now)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={signature(secret, t, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` under ``secret`` within ``tolerance_s`` of
    ``now`` (default: the clock). Malformed headers are False, never an exception."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, t, body), given)
