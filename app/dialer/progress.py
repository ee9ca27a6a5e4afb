"""Text rendering of campaign stats for the CLI's progress display (pure functions).

``render(stats)`` takes the dict of ``Campaigns.stats`` and returns two lines::

    cmp_0a1b2c3d4e5f June reminders  running  [#########-----------] 23/50 (46%)
      calling 3 · waiting 24 · attempts 31 · confirmed 12 · voicemail_left 6 · busy 2
"""

from __future__ import annotations

from typing import Any

BAR_WIDTH = 30


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[####------]`` with ``done/total`` of ``width`` filled (empty total: full)."""
    filled = width if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def render(stats: dict[str, Any]) -> list[str]:
    """Two display lines for one campaign's stats (see the module doc)."""
    total, done = int(stats.get("contacts", 0)), int(stats.get("done", 0))
    pct = 100 if total == 0 else int(100 * done / total)
    head = (
        f"{stats.get('id', '')} {stats.get('name', '')}  {stats.get('status', '')}  "
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
    return [head, "  " + " · ".join(parts)]


def finished(stats: dict[str, Any]) -> bool:
    """True when the campaign will not change any more (completed, or cancelled and drained)."""
    status = stats.get("status")
    if status == "completed":
        return True
    return status == "cancelled" and not stats.get("in_progress") and not stats.get("pending")
