"""The Lua steps on real Redis: leases, fencing, concurrency, CPS, idempotent finishing."""

from __future__ import annotations

from app.dialer.models import CampaignStatus, Outcome
from tests.dialer.conftest import T0, Rig


def people(n: int, tz: str = "UTC") -> list[dict[str, object]]:
    return [{"phone": f"+1555555{i:04d}", "timezone": tz} for i in range(1, n + 1)]


async def test_concurrency_cap_holds_across_owners(rig: Rig) -> None:
    cid = await rig.campaign(people(5), max_concurrent=2, cps=100)
    s = rig.store
    a = await s.claim(cid, owner="A", now_ms=T0, lease_ms=5000, max_concurrent=2)
    b = await s.claim(cid, owner="B", now_ms=T0, lease_ms=5000, max_concurrent=2)
    c = await s.claim(cid, owner="C", now_ms=T0, lease_ms=5000, max_concurrent=2)
    assert (a.kind, b.kind, c.kind) == ("claimed", "claimed", "full")
    assert {a.contact, b.contact} == {"1", "2"}
    stats = await rig.campaigns.stats(cid)
    assert (stats["pending"], stats["in_progress"], stats["done"]) == (3, 2, 0)


async def test_dial_is_fenced_by_the_lease(rig: Rig) -> None:
    cid = await rig.campaign(people(1), cps=100)
    s = rig.store
    claim = await s.claim(cid, owner="A", now_ms=T0, lease_ms=5000, max_concurrent=5)
    # A stalls; its lease expires and B's recovery gives the contact back.
    attempt = await s.attempt(claim.attempt)
    assert attempt["state"] == "leased" and attempt["owner"] == "A"
    assert await s.release(cid, "1", claim.attempt, owner="", due_ms=T0, recovered=True)
    # A wakes up and tries to dial: refused, nothing dialled.
    late = await s.dial(
        cid,
        "1",
        claim.attempt,
        owner="A",
        now_ms=T0 + 6000,
        campaign_interval_ms=1,
        account_interval_ms=1,
        deadline_ms=T0 + 60_000,
    )
    assert late.kind == "lost"
    again = await s.claim(cid, owner="B", now_ms=T0 + 6000, lease_ms=5000, max_concurrent=5)
    ok = await s.dial(
        cid,
        "1",
        again.attempt,
        owner="B",
        now_ms=T0 + 6000,
        campaign_interval_ms=1,
        account_interval_ms=1,
        deadline_ms=T0 + 60_000,
    )
    assert (again.kind, ok.kind, ok.number) == ("claimed", "ok", 1)
    stats = await rig.campaigns.stats(cid)
    assert stats["attempts"] == 1 and stats["recovered_leases"] == 1
    assert await s.contact_attempts(cid, "1") == [await s.attempt(again.attempt)]


async def test_calls_per_second_across_dialers_and_campaigns(rig: Rig) -> None:
    one = await rig.campaign(people(3), cps=1)
    s = rig.store

    async def claim_and_dial(cid: str, owner: str, now: int) -> str:
        c = await s.claim(cid, owner=owner, now_ms=now, lease_ms=5000, max_concurrent=10)
        if c.kind != "claimed":
            return c.kind
        r = await s.dial(
            cid,
            c.contact,
            c.attempt,
            owner=owner,
            now_ms=now,
            campaign_interval_ms=1000,
            account_interval_ms=500,
            deadline_ms=now + 60_000,
        )
        return r.kind

    assert await claim_and_dial(one, "A", T0) == "ok"
    assert await claim_and_dial(one, "B", T0 + 999) == "rate"
    assert await claim_and_dial(one, "B", T0 + 1000) == "ok"
    # The account-wide slot (500 ms) also binds another campaign.
    two = await rig.campaign(people(2, "Europe/Paris"), cps=10)
    assert await claim_and_dial(two, "C", T0 + 1200) == "rate"
    assert await claim_and_dial(two, "C", T0 + 1500) == "ok"


async def test_finish_happens_once_and_schedules_the_retry(rig: Rig) -> None:
    cid = await rig.campaign(people(1), cps=100)
    s = rig.store
    c = await s.claim(cid, owner="A", now_ms=T0, lease_ms=5000, max_concurrent=5)
    await s.dial(
        cid,
        "1",
        c.attempt,
        owner="A",
        now_ms=T0,
        campaign_interval_ms=1,
        account_interval_ms=1,
        deadline_ms=T0 + 60_000,
    )
    rig.clock.set(T0 + 30_000)
    first = await rig.campaigns.finish_attempt(c.attempt, call_status="busy")
    second = await rig.campaigns.finish_attempt(c.attempt, call_status="completed")
    assert (first, second) == (True, False)
    attempt = await s.attempt(c.attempt)
    assert attempt["outcome"] == "busy" and int(attempt["retry_at_ms"]) == T0 + 30_000 + 1_800_000
    contact = await s.contact(cid, "1")
    assert contact["state"] == "pending" and int(contact["due_at_ms"]) == T0 + 1_830_000
    stats = await rig.campaigns.stats(cid)
    assert stats["attempt_outcomes"] == {"busy": 1} and stats["pending"] == 1


async def test_progress_only_moves_forward(rig: Rig) -> None:
    cid = await rig.campaign(people(1), cps=100)
    s = rig.store
    c = await s.claim(cid, owner="A", now_ms=T0, lease_ms=5000, max_concurrent=5)
    assert not await s.progress(
        cid, c.attempt, state="ringing", stamp_field="ringing_at_ms", now_ms=T0
    )
    await s.dial(
        cid,
        "1",
        c.attempt,
        owner="A",
        now_ms=T0,
        campaign_interval_ms=1,
        account_interval_ms=1,
        deadline_ms=T0 + 60_000,
    )
    sid = "CA" + "1" * 32
    await s.progress(
        cid, c.attempt, state="answered", stamp_field="answered_at_ms", now_ms=T0 + 5, call_sid=sid
    )
    await s.progress(cid, c.attempt, state="ringing", stamp_field="ringing_at_ms", now_ms=T0 + 9)
    await s.progress(cid, c.attempt, state="answered", stamp_field="answered_at_ms", now_ms=T0 + 20)
    a = await s.attempt(c.attempt)
    assert a["state"] == "answered" and a["answered_at_ms"] == str(T0 + 5)
    assert await s.attempt_for_call(sid) == c.attempt


async def test_cancel_ends_waiting_contacts_and_refuses_imports(rig: Rig) -> None:
    cid = await rig.campaign(people(4), cps=100)
    s = rig.store
    c = await s.claim(cid, owner="A", now_ms=T0, lease_ms=5000, max_concurrent=5)
    await s.dial(
        cid,
        c.contact,
        c.attempt,
        owner="A",
        now_ms=T0,
        campaign_interval_ms=1,
        account_interval_ms=1,
        deadline_ms=T0 + 60_000,
    )
    cancelled = await rig.campaigns.cancel(cid)
    assert cancelled.status is CampaignStatus.cancelled
    stats = await rig.campaigns.stats(cid)
    assert stats["outcomes"] == {"campaign_cancelled": 3} and stats["in_progress"] == 1
    # The call in progress finishes; no retry after a cancel.
    await rig.campaigns.finish_attempt(c.attempt, call_status="no-answer")
    stats = await rig.campaigns.stats(cid)
    assert stats["outcomes"] == {"campaign_cancelled": 3, "no_answer": 1}
    assert await s.complete_if_done(cid, T0) == "cancelled"
    assert cid not in await s.active_ids()
    import pytest

    from app.errors import CampaignStateError

    with pytest.raises(CampaignStateError):
        await rig.campaigns.import_contacts(cid, b"phone,tz\n+15555559999,UTC\n", "csv")
    with pytest.raises(CampaignStateError):
        await rig.campaigns.resume(cid)
    assert Outcome.campaign_cancelled.value in stats["outcomes"]


async def test_duplicates_against_the_campaign_are_rejected_with_rows(rig: Rig) -> None:
    cid = await rig.campaign(people(2), cps=100)
    report = await rig.campaigns.import_contacts(
        cid, b"phone,tz\n+15555550001,UTC\n+15555550003,UTC\n", "csv"
    )
    assert report.imported == 1 and [(e.row, e.field) for e in report.errors] == [(2, "phone")]
    assert "already contact 1" in report.errors[0].message
