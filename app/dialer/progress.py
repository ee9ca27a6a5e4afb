"""Text rendering of campaign stats for the CLI's progress display (pure functions).

``render(stats, now_ms=…, dialers=…)`` takes the dict of ``Campaigns.stats`` and returns
two lines, then a line for each thing that explains a wait::

    cmp_0a1b2c3d4e5f June reminders  running  [#########-----------] 23/50 (46%)
      calling 3 · waiting 24 · attempts 31 · confirmed 12 · voicemail_left 6 · busy 2
      next dial 14:05:00 (in 29m 12s)
      dial errors 3, last 13:35:48: calls.create to +155****0123: cannot connect to …
      no dialer is running: start `switchboard serve` or `switchboard dialer`

*next dial* shows while contacts wait and the earliest is due later (a retry back-off,
the calling window); *dial errors* once ``calls.create`` failed (the carrier refused
the call or could not be reached), with the latest message; the dialer line when
``dialers`` is 0 and the campaign still has contacts to dial. Times are the local
time of the machine showing them.
"""

from __future__ import annotations

import time
from typing import Any

BAR_WIDTH = 30
#: Longest dial error message shown (characters).
MAX_ERROR_CHARS = 160
NO_DIALER = (
    "no dialer is running: start `switchboard serve` (its dialer is on unless "
    "SWITCHBOARD_DIALER_ENABLED=false) or `switchboard dialer`"
)


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[####------]`` with ``done/total`` of ``width`` filled (empty total: full)."""
    filled = width if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def clock_time(at_ms: int, now_ms: int) -> str:
    """``HH:MM:SS`` in local time, with the date in front when not on ``now_ms``'s day."""
    at, now = time.localtime(at_ms / 1000), time.localtime(now_ms / 1000)
    same_day = (at.tm_year, at.tm_yday) == (now.tm_year, now.tm_yday)
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", at)


def duration(ms: int) -> str:
    """``45s``, ``29m 12s``, ``3h 05m``, ``2d 4h`` (rounded down)."""
    s = max(0, ms // 1000)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def render(
    stats: dict[str, Any],
    *,
    now_ms: int | None = None,
    dialers: int | None = None,
    countdown: bool = True,
) -> list[str]:
    """The display lines for one campaign's stats (see the module doc). ``now_ms``:
    the current time (Unix ms, default the system clock); ``dialers``: how many dialers
    are alive (None: unknown, no line); ``countdown``: show "(in …)" after the next
    dial time (off where lines are printed only when they change)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    total, done = int(stats.get("contacts", 0)), int(stats.get("done", 0))
    pct = 100 if total == 0 else int(100 * done / total)
    status = stats.get("status", "")
    head = (
        f"{stats.get('id', '')} {stats.get('name', '')}  {status}  "
        f"{bar(done, total)} {done}/{total} ({pct}%)"
    )
    parts = [
        f"calling {stats.get('in_progress', 0)}",
        f"waiting {stats.get('pending', 0)}",
        f"attempts {stats.get('attempts', 0)}",
    ]
    outcomes: dict[str, int] = stats.get("outcomes") or {}
    parts += [f"{name} {count}" for name, count in sorted(outcomes.items(), key=lambda i: -i[1])]
    if stats.get("recovered_leases"):
        parts.append(f"recovered {stats['recovered_leases']}")
    lines = [head, "  " + " · ".join(parts)]
    active = status in ("running", "paused")
    due = stats.get("next_due_at_ms")
    if active and stats.get("pending") and due is not None and int(due) > now + 1000:
        left = f" (in {duration(int(due) - now)})" if countdown else ""
        lines.append(f"  next dial {clock_time(int(due), now)}{left}")
    errors = int(stats.get("dial_errors") or 0)
    message = stats.get("last_dial_error")
    if errors and message:
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 1] + "…"
        at = stats.get("last_dial_error_at_ms")
        when = f", last {clock_time(int(at), now)}" if at else ""
        lines.append(f"  dial errors {errors}{when}: {message}")
    if dialers == 0 and status == "running" and stats.get("pending"):
        lines.append("  " + NO_DIALER)
    return lines


def finished(stats: dict[str, Any]) -> bool:
    """True when the campaign will not change any more (completed, or cancelled and drained)."""
    status = stats.get("status")
    if status == "completed":
        return True
    return status == "cancelled" and not stats.get("in_progress") and not stats.get("pending")
