"""Calling windows in the recipient's local time (``zoneinfo``; DST-aware).

All instants are Unix epoch ms (UTC); ``tz`` is an IANA zone name. A window is
``[start, end)`` local wall-clock time on the listed weekdays. When a window's start
falls into a DST gap (a local time that does not exist that day) the first valid
instant after it is used.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from app.dialer.models import CallingWindow

_DAY_MS = 86_400_000


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for ``name`` (cached). Raises ``ZoneInfoNotFoundError``."""
    return ZoneInfo(name)


def _local(at_ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(zone(tz))


def allows(window: CallingWindow, at_ms: int, tz: str) -> bool:
    """True when instant ``at_ms`` is inside ``window`` in zone ``tz``."""
    local = _local(at_ms, tz)
    if local.weekday() not in window.weekday_numbers:
        return False
    t = local.time().replace(tzinfo=None)
    return window.start <= t < window.end


def next_open(window: CallingWindow, at_ms: int, tz: str) -> int:
    """The first instant ≥ ``at_ms`` inside ``window`` in zone ``tz`` (``at_ms`` itself when
    it already is). Looks ahead 8 days, which always finds one (``days`` is non-empty)."""
    if allows(window, at_ms, tz):
        return at_ms
    z = zone(tz)
    local = _local(at_ms, tz)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in window.weekday_numbers:
            continue
        opening = datetime.combine(day, window.start, tzinfo=z)
        candidate = int(opening.astimezone(UTC).timestamp() * 1000)
        if candidate < at_ms:
            continue  # today's window already closed (at_ms is not inside it)
        # A start inside a DST gap maps to an instant that is not inside the window
        # (or is before at_ms); step forward a minute at a time for up to 3 hours.
        for _ in range(180):
            if allows(window, candidate, tz):
                return candidate
            if _local(candidate, tz).date() != day:
                break
            candidate += 60_000
    raise ValueError(f"no opening of the calling window within 8 days in {tz}")  # pragma: no cover


def local_iso(at_ms: int, tz: str) -> str:
    """``at_ms`` as an ISO 8601 local time with offset in ``tz`` (for history and tests)."""
    return _local(at_ms, tz).isoformat(timespec="seconds")
