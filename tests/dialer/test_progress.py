"""The campaign progress display: counts, next dial, the last dial error, no dialer."""

from __future__ import annotations

import time
from typing import Any

from app.dialer.progress import NO_DIALER, bar, duration, finished, render, summary

NOW = int(time.mktime((2026, 3, 3, 14, 0, 0, 0, 0, -1)) * 1000)  # local 14:00:00


def stats(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "cmp_0a1b2c3d4e5f",
        "name": "June reminders",
        "status": "running",
        "contacts": 3,
        "pending": 3,
        "in_progress": 0,
        "done": 0,
        "attempts": 0,
        "outcomes": {},
        "next_due_at_ms": NOW,
        "dial_errors": 0,
        "last_dial_error": None,
        "last_dial_error_at_ms": None,
    }
    base.update(kw)
    return base


def test_counts_only_while_nothing_explains_a_wait() -> None:
    lines = render(stats(pending=1, in_progress=2, done=0, attempts=2), now_ms=NOW, dialers=1)
    assert lines == [
        "cmp_0a1b2c3d4e5f June reminders  running  [------------------------------] 0/3 (0%)",
        "  calling 2 · waiting 1 · attempts 2",
    ]


def test_dial_error_and_next_retry_are_shown() -> None:
    s = stats(
        attempts=3,
        attempt_outcomes={"failed": 3},
        next_due_at_ms=NOW + 600_000,
        dial_errors=3,
        last_dial_error="calls.create to +155****0142: cannot connect to "
        "http://127.0.0.1:8766: [Errno 111] Connection refused",
        last_dial_error_at_ms=NOW - 2000,
    )
    lines = render(s, now_ms=NOW, dialers=1)
    assert lines[2] == "  next dial 14:10:00 (in 10m 00s)"
    assert lines[3] == (
        "  dial errors 3, last 13:59:58: calls.create to +155****0142: cannot connect to "
        "http://127.0.0.1:8766: [Errno 111] Connection refused"
    )
    # Printed only when it changes (a pipe): no countdown, so no new line every second.
    assert render(s, now_ms=NOW, countdown=False)[2] == "  next dial 14:10:00"
    assert render(s, now_ms=NOW + 1000, countdown=False) == render(s, now_ms=NOW, countdown=False)


def test_next_dial_on_another_day_shows_the_date() -> None:
    lines = render(stats(next_due_at_ms=NOW + 86_400_000), now_ms=NOW)
    assert lines[2] == "  next dial 2026-03-04 14:00:00 (in 1d 0h)"


def test_long_errors_are_cut() -> None:
    lines = render(stats(dial_errors=1, last_dial_error="x" * 1000), now_ms=NOW)
    assert lines[-1].endswith("x…") and len(lines[-1]) < 200


def test_no_dialer_is_said_while_contacts_wait() -> None:
    assert render(stats(), now_ms=NOW, dialers=0)[-1] == "  " + NO_DIALER
    assert NO_DIALER not in "\n".join(render(stats(), now_ms=NOW, dialers=None))
    done = stats(status="completed", pending=0, done=3)
    assert NO_DIALER not in "\n".join(render(done, now_ms=NOW, dialers=0))
    assert finished(done)


def test_duration() -> None:
    assert [duration(ms) for ms in (0, 59_999, 60_000, 3_599_000, 3_600_000, 90_061_000)] == [
        "0s",
        "59s",
        "1m 00s",
        "59m 59s",
        "1h 00m",
        "1d 1h",
    ]


def test_eta_at_the_pace_so_far() -> None:
    s = stats(contacts=10, done=4, pending=6, next_due_at_ms=None)
    lines = render(s, now_ms=NOW, started_at_ms=NOW - 120_000)  # 4 done in 2 min
    assert lines[2] == "  eta 14:03:00 (in 3m 00s)"  # 6 more at 2 per minute
    later = stats(contacts=10, done=4, pending=6, next_due_at_ms=NOW + 600_000)
    assert render(later, now_ms=NOW, started_at_ms=NOW - 120_000)[2].startswith("  eta 14:10:00")
    assert not any("eta" in line for line in render(s, now_ms=NOW))  # start unknown


def test_a_cancelled_campaign_is_not_a_full_bar() -> None:
    s = stats(
        status="cancelled",
        contacts=10,
        done=10,
        pending=0,
        outcomes={"answered": 4, "campaign_cancelled": 6},
    )
    head = render(s, now_ms=NOW)[0]
    assert "cancelled" in head and bar(4, 10, skipped=6) in head
    assert head.endswith("4/10 (40%) · 6 not called")
    assert bar(4, 10, width=10, skipped=6) == "[####xxxxxx]"


def test_end_summary_table() -> None:
    s = stats(
        status="completed",
        contacts=3,
        done=3,
        pending=0,
        attempts=5,
        outcomes={"confirmed": 2, "busy": 1},
        attempt_outcomes={"busy": 3, "answered": 2},
    )
    missed = [
        {
            "id": "3",
            "phone_masked": "+155****7003",
            "outcome": "busy",
            "attempts": 3,
            "reason": "retries exhausted",
            "error": "",
        },
    ]
    lines = summary(s, started_at_ms=NOW - 134_000, ended_at_ms=NOW, not_reached=missed, now_ms=NOW)
    assert lines[0] == (
        "campaign cmp_0a1b2c3d4e5f June reminders: completed in 2m 14s (13:57:46 → 14:00:00)"
    )
    assert [line.split() for line in lines[2:6]] == [
        ["outcome", "contacts"],
        ["confirmed", "2"],
        ["busy", "1"],
        ["total", "3"],
    ]
    assert "  attempts 5: busy 3 · answered 2" in lines
    assert lines[-1].split() == ["3", "+155****7003", "busy", "3", "retries", "exhausted"]
