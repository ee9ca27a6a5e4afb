"""Text rendering of campaign stats for the CLI's progress display (pure functions).

``render(stats, now_ms=…, dialers=…, started_at_ms=…)`` takes the dict of
``Campaigns.stats`` and returns two lines, then a line for each thing that explains a
wait::

    cmp_0a1b2c3d4e5f June reminders  running  [#########-----------] 23/50 (46%)
      calling 3 · waiting 24 · attempts 31 · confirmed 12 · voicemail_left 6 · busy 2
      eta 14:41:30 (in 36m 30s)
      next dial 14:05:00 (in 29m 12s)
      dial errors 3, last 13:35:48: calls.create to +155****0123: cannot connect to …
      no dialer is running: start `switchboard serve` or `switchboard dialer`

*eta* is when the last contact should be done at the pace so far (never before the next
dial); *next dial* shows while contacts wait and the earliest is due later (its retry
back-off, or the calling window); *dial errors* once ``calls.create`` failed (the
carrier refused the call or could not be reached), with the latest message; the dialer
line when ``dialers`` is 0 and the campaign still has contacts to dial. A cancelled
campaign's bar shows the contacts it never called as ``x`` (``[####xxxx]``), not as
done. Times are the local time of the machine showing them.

``summary(...)`` is the table printed when a watched campaign ends: contacts per
outcome, attempts per outcome, how long it ran, and the contacts it did not reach with
the reason.
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


#: Contact outcomes that mean the campaign never called the contact.
NOT_CALLED = ("campaign_cancelled", "expired", "dnc")
#: Contact outcomes that mean the calls did not reach anyone.
NOT_REACHED = ("busy", "no_answer", "failed", "voicemail", "fax")


def bar(done: int, total: int, width: int = BAR_WIDTH, skipped: int = 0) -> str:
    """``[####xx----]``: ``done/total`` of ``width`` as ``#``, then ``skipped/total`` (contacts
    never called) as ``x`` (empty total: full)."""
    if total <= 0:
        return "[" + "#" * width + "]"
    filled = min(width, round(width * done / total))
    crossed = min(width - filled, round(width * skipped / total))
    return "[" + "#" * filled + "x" * crossed + "-" * (width - filled - crossed) + "]"


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


def eta_ms(stats: dict[str, Any], now_ms: int, started_at_ms: int | None) -> int | None:
    """When the last contact should be done, at the pace so far (contacts done per ms
    since the start), never before the next dial; None before anything is done."""
    total, done = int(stats.get("contacts", 0)), int(stats.get("done", 0))
    if not started_at_ms or done <= 0 or done >= total or now_ms <= started_at_ms:
        return None
    pace = done / (now_ms - started_at_ms)
    at = now_ms + int((total - done) / pace)
    due = stats.get("next_due_at_ms")
    return max(at, int(due)) if due is not None and stats.get("pending") else at


def render(
    stats: dict[str, Any],
    *,
    now_ms: int | None = None,
    dialers: int | None = None,
    countdown: bool = True,
    started_at_ms: int | None = None,
) -> list[str]:
    """The display lines for one campaign's stats (see the module doc). ``now_ms``:
    the current time (Unix ms, default the system clock); ``dialers``: how many dialers
    are alive (None: unknown, no line); ``countdown``: show "(in …)" after the next
    dial time and the ETA (off where lines are printed only when they change);
    ``started_at_ms``: when the campaign started (for the ETA)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    total, done = int(stats.get("contacts", 0)), int(stats.get("done", 0))
    status = stats.get("status", "")
    outcomes_: dict[str, int] = stats.get("outcomes") or {}
    skipped = sum(outcomes_.get(o, 0) for o in NOT_CALLED) if status == "cancelled" else 0
    called = done - skipped
    pct = 100 if total == 0 else int(100 * called / total)
    head = (
        f"{stats.get('id', '')} {stats.get('name', '')}  {status}  "
        f"{bar(called, total, skipped=skipped)} {called}/{total} ({pct}%)"
    )
    if skipped:
        head += f" · {skipped} not called"
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
    eta = eta_ms(stats, now, started_at_ms) if status == "running" else None
    if eta is not None and countdown:
        lines.append(f"  eta {clock_time(eta, now)} (in {duration(eta - now)})")
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


def summary(
    stats: dict[str, Any],
    *,
    started_at_ms: int | None,
    ended_at_ms: int | None,
    not_reached: list[dict[str, Any]],
    not_reached_total: int | None = None,
    now_ms: int | None = None,
) -> list[str]:
    """The end-of-campaign table (see the module doc). ``not_reached``: contacts (as
    ``public_contact`` dicts, plus ``error``: their last attempt's) whose outcome is in
    ``NOT_REACHED`` or ``NOT_CALLED``; ``not_reached_total``: how many there are in all
    when the list is cut."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    status = stats.get("status", "")
    outcomes: dict[str, int] = stats.get("outcomes") or {}
    total = int(stats.get("contacts", 0))
    took = ""
    if started_at_ms:
        end = ended_at_ms or now
        took = (
            f" in {duration(end - started_at_ms)} "
            f"({clock_time(started_at_ms, now)} → {clock_time(end, now)})"
        )
    lines = [f"campaign {stats.get('id', '')} {stats.get('name', '')}: {status}{took}", ""]
    width = max([len("outcome"), *(len(o) for o in outcomes)]) + 2
    lines.append(f"  {'outcome':<{width}}{'contacts':>9}")
    for name, count in sorted(outcomes.items(), key=lambda i: (-i[1], i[0])):
        lines.append(f"  {name:<{width}}{count:>9}")
    lines.append(f"  {'total':<{width}}{total:>9}")
    attempts = int(stats.get("attempts", 0))
    per = stats.get("attempt_outcomes") or {}
    detail = " · ".join(f"{k} {v}" for k, v in sorted(per.items(), key=lambda i: (-i[1], i[0])))
    lines += ["", f"  attempts {attempts}" + (f": {detail}" if detail else "")]
    errors = int(stats.get("dial_errors") or 0)
    if errors:
        lines.append(f"  dial errors {errors}: {stats.get('last_dial_error') or ''}"[:200])
    count = not_reached_total if not_reached_total is not None else len(not_reached)
    if count:
        lines += ["", f"  not reached ({count})"]
        lines.append(f"  {'contact':>7}  {'number':<14}  {'outcome':<18}{'attempts':>8}  reason")
        for c in not_reached:
            reason = c.get("error") or c.get("reason") or ""
            if len(reason) > 90:
                reason = reason[:89] + "…"
            lines.append(
                f"  {c.get('id') or '':>7}  {c.get('phone_masked') or '':<14}  "
                f"{c.get('outcome') or '':<18}{c.get('attempts') or 0:>8}  {reason}"
            )
        if count > len(not_reached):
            lines.append(f"  … and {count - len(not_reached)} more")
    return lines
