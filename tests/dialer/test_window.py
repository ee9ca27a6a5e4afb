"""Calling windows in the recipient's local time (zoneinfo, DST)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from app.dialer.models import CallingWindow
from app.dialer.window import allows, local_iso, next_open

WINDOW = CallingWindow(start=time(9), end=time(20), days=["mon", "tue", "wed", "thu", "fri"])


def ms(text: str) -> int:
    """Unix ms of an ISO instant with offset."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_allows_uses_local_time_and_weekdays() -> None:
    # Monday 2025-03-03 13:00 UTC: 08:00 in New York, 13:00 in London, 22:00 in Tokyo.
    t = ms("2025-03-03T13:00:00+00:00")
    assert not allows(WINDOW, t, "America/New_York")
    assert allows(WINDOW, t, "Europe/London")
    assert not allows(WINDOW, t, "Asia/Tokyo")
    # The end is exclusive; the start inclusive.
    assert allows(WINDOW, ms("2025-03-03T09:00:00-05:00"), "America/New_York")
    assert not allows(WINDOW, ms("2025-03-03T20:00:00-05:00"), "America/New_York")
    # Saturday is not a window day.
    assert not allows(WINDOW, ms("2025-03-08T12:00:00+00:00"), "Europe/London")


@pytest.mark.parametrize(
    ("at", "tz", "expected"),
    [
        # Before the window opens today → today's opening.
        ("2025-03-03T13:00:00+00:00", "America/New_York", "2025-03-03T09:00:00-05:00"),
        # After it closed → tomorrow's opening.
        ("2025-03-03T13:00:00+00:00", "Asia/Tokyo", "2025-03-04T09:00:00+09:00"),
        # Friday evening → Monday morning.
        ("2025-03-07T21:30:00+00:00", "Europe/London", "2025-03-10T09:00:00+00:00"),
        # Inside → itself.
        ("2025-03-03T13:00:00+00:00", "Europe/London", "2025-03-03T13:00:00+00:00"),
        # Sydney is already on Tuesday.
        ("2025-03-03T13:00:00+00:00", "Australia/Sydney", "2025-03-04T09:00:00+11:00"),
    ],
)
def test_next_open(at: str, tz: str, expected: str) -> None:
    got = next_open(WINDOW, ms(at), tz)
    assert got == ms(expected), local_iso(got, tz)
    assert allows(WINDOW, got, tz)


def test_dst_changes_move_the_utc_opening() -> None:
    # New York switches to EDT on Sunday 2025-03-09: Monday 09:00 is 13:00 UTC, not 14:00.
    friday_night = ms("2025-03-07T23:00:00-05:00")
    opening = next_open(WINDOW, friday_night, "America/New_York")
    assert opening == ms("2025-03-10T13:00:00+00:00")


def test_window_starting_in_a_dst_gap_opens_at_the_first_valid_minute() -> None:
    early = CallingWindow(start=time(2, 30), end=time(5), days=["sun"])
    # 2025-03-09 02:30 does not exist in New York (02:00 → 03:00).
    got = next_open(early, ms("2025-03-09T00:00:00-05:00"), "America/New_York")
    assert allows(early, got, "America/New_York")
    assert datetime.fromtimestamp(got / 1000, tz=UTC) <= datetime.fromisoformat(
        "2025-03-09T03:30:00-04:00"
    )


def test_window_validation() -> None:
    with pytest.raises(ValueError):
        CallingWindow(start=time(20), end=time(9))
    with pytest.raises(ValueError):
        CallingWindow(days=[])
    with pytest.raises(ValueError):
        CallingWindow(days=["mon", "mon"])
