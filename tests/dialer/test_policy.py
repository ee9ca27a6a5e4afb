"""Retry and voicemail decisions."""

from __future__ import annotations

from datetime import datetime, time

from app.dialer.models import (
    CallingWindow,
    CampaignSpec,
    Outcome,
    RetryPolicy,
    RetryRule,
    VoicemailAction,
)
from app.dialer.policy import carrier_outcome, decide

ALWAYS = CallingWindow(
    start=time(0), end=time(23, 59), days=list(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
)


def spec(**kw: object) -> CampaignSpec:
    values: dict[str, object] = {
        "name": "t",
        "flow": "reminder",
        "from_number": "+15550100000",
        "window": ALWAYS,
        "retry": RetryPolicy(
            busy=RetryRule(retries=3, backoff_s=[1800, 3600, 7200]),
            no_answer=RetryRule(retries=1, backoff_s=[600]),
            max_attempts=3,
        ),
        "voicemail": VoicemailAction.retry,
    }
    values.update(kw)
    return CampaignSpec.model_validate(values)


T0 = int(datetime.fromisoformat("2025-03-04T12:00:00+00:00").timestamp() * 1000)


def test_backoff_follows_the_list_then_stops() -> None:
    s = spec()
    d1 = decide(s, Outcome.busy, previous={}, attempts=1, ended_ms=T0, tz="UTC")
    assert d1.retry and d1.retry_at_ms == T0 + 1800_000
    d2 = decide(s, Outcome.busy, previous={"busy": 1}, attempts=2, ended_ms=T0, tz="UTC")
    assert d2.retry_at_ms == T0 + 3600_000
    # max_attempts 3 reached before the busy rule's 3 retries are used.
    d3 = decide(s, Outcome.busy, previous={"busy": 2}, attempts=3, ended_ms=T0, tz="UTC")
    assert d3.final is Outcome.busy and "max_attempts" in d3.reason
    d4 = decide(s, Outcome.no_answer, previous={"no_answer": 1}, attempts=2, ended_ms=T0, tz="UTC")
    assert d4.final is Outcome.no_answer


def test_retry_waits_for_the_window_and_stops_at_the_campaign_end() -> None:
    s = spec(window=CallingWindow(start=time(9), end=time(17)))
    late = int(datetime.fromisoformat("2025-03-04T16:45:00+00:00").timestamp() * 1000)
    d = decide(s, Outcome.busy, previous={}, attempts=1, ended_ms=late, tz="Europe/London")
    assert d.retry_at_ms == int(
        datetime.fromisoformat("2025-03-05T09:00:00+00:00").timestamp() * 1000
    )
    ending = spec(
        window=CallingWindow(start=time(9), end=time(17)),
        end_at=datetime.fromisoformat("2025-03-04T23:00:00+00:00"),
    )
    d = decide(ending, Outcome.busy, previous={}, attempts=1, ended_ms=late, tz="Europe/London")
    assert d.final is Outcome.busy and "campaign ends" in d.reason


def test_voicemail_policy_and_final_outcomes() -> None:
    retry = decide(spec(), Outcome.voicemail, previous={}, attempts=1, ended_ms=T0, tz="UTC")
    assert retry.retry
    hang_up = spec(voicemail=VoicemailAction.hang_up)
    assert (
        decide(hang_up, Outcome.voicemail, previous={}, attempts=1, ended_ms=T0, tz="UTC").final
        is Outcome.voicemail
    )
    for o in (Outcome.confirmed, Outcome.opted_out, Outcome.voicemail_left, Outcome.answered):
        assert decide(spec(), o, previous={}, attempts=1, ended_ms=T0, tz="UTC").final is o
    stopped = decide(
        spec(), Outcome.busy, previous={}, attempts=1, ended_ms=T0, tz="UTC", running=False
    )
    assert stopped.final is Outcome.busy


def test_carrier_outcome() -> None:
    assert carrier_outcome("busy", None) is Outcome.busy
    assert carrier_outcome("no-answer", None) is Outcome.no_answer
    assert carrier_outcome("failed", None) is Outcome.failed
    assert carrier_outcome("canceled", None) is Outcome.failed
    assert carrier_outcome("completed", "machine_end_beep") is Outcome.voicemail
    assert carrier_outcome("completed", "fax") is Outcome.fax
    assert carrier_outcome("completed", "human") is Outcome.answered
    assert carrier_outcome("completed", None) is Outcome.answered
