"""The dialer's passes on a fake clock: checks right before each dial, recovery."""

from __future__ import annotations

from datetime import time

from app.dialer.models import CallingWindow
from app.dialer.placer import CarrierCallState
from app.errors import DialFailed
from tests.dialer.conftest import T0, Rig, RigFactory
from tests.helpers import wait_until


async def test_dials_only_inside_each_contacts_window(rig: Rig) -> None:
    window = CallingWindow(start=time(9), end=time(17))
    contacts = [
        {"phone": "+15555550001", "timezone": "America/New_York"},  # 10:00: open
        {"phone": "+15555550002", "timezone": "Asia/Tokyo"},  # Tue 00:00: closed
        {"phone": "+15555550003", "timezone": "America/Los_Angeles"},  # 07:00: opens 16:00 UTC
    ]
    cid = await rig.campaign(contacts, window=window, cps=100)
    d = rig.dialer("A")
    wake = await d.step()
    await d.wait_dials()
    assert [c.to for c in rig.placer.created] == ["+15555550001"]
    assert wake == T0 + 7200_000  # Los Angeles opens at 09:00 PST = 17:00 UTC
    rig.clock.set(wake)
    await d.step()
    await d.wait_dials()
    assert [c.to for c in rig.placer.created][-1] == "+15555550003"
    tokyo = (await rig.campaigns.contact_history(cid, "2"))["contact"]
    assert tokyo["state"] == "pending" and tokyo["due_at_ms"] == T0 + 9 * 3600_000


async def test_dnc_and_opt_outs_are_checked_right_before_the_dial(rig: Rig) -> None:
    contacts = [{"phone": f"+1555555000{i}", "timezone": "UTC"} for i in range(1, 4)]
    cid = await rig.campaign(contacts, cps=100)
    rig.blocked.add("+15555550001")
    await rig.campaigns.opt_out_number(cid, "+1 555 555 0002")
    d = rig.dialer("A")
    await d.step()
    await d.wait_dials()
    assert [c.to for c in rig.placer.created] == ["+15555550003"]
    stats = await rig.campaigns.stats(cid)
    assert stats["outcomes"] == {"dnc": 1, "opted_out": 1}
    assert stats["attempts"] == 1


async def test_a_dead_dialers_lease_is_recovered_by_another(rig: Rig) -> None:
    cid = await rig.campaign([{"phone": "+15555550001", "timezone": "UTC"}], cps=100)
    s = rig.store
    # Dialer A claims and dies before dialling.
    dead = await s.claim(cid, owner="A", now_ms=T0, lease_ms=5000, max_concurrent=5)
    b = rig.dialer("B")
    await b.step()
    assert rig.placer.created == []  # the lease still holds
    rig.clock.set(T0 + 5001)
    await b.step()  # recovers the lease ...
    await b.step()  # ... and dials
    await b.wait_dials()
    assert [c.to for c in rig.placer.created] == ["+15555550001"]
    assert (await s.attempt(dead.attempt)) == {}
    history = await rig.campaigns.contact_history(cid, "1")
    assert [a["owner"] for a in history["attempts"]] == ["B"]
    assert (await rig.campaigns.stats(cid))["recovered_leases"] == 1


async def test_a_dial_lost_with_its_dialer_is_failed_and_retried(make_rig: RigFactory) -> None:
    rig = make_rig(dialer_dial_grace_ms=10_000)
    cid = await rig.campaign(
        [{"phone": "+15555550001", "timezone": "UTC"}],
        cps=100,
        retry={"failed": {"retries": 1, "backoff_s": [60]}},
    )
    rig.placer.fail["+15555550001"] = DialFailed("timeout", definite=False)
    a = rig.dialer("A")
    await a.step()
    await a.wait_dials()
    history = await rig.campaigns.contact_history(cid, "1")
    assert history["attempts"][0]["state"] == "dialing"  # outcome unknown: wait for the carrier
    rig.clock.set(T0 + 10_001)
    await a.step()
    history = await rig.campaigns.contact_history(cid, "1")
    (attempt,) = history["attempts"]
    assert attempt["outcome"] == "failed" and attempt["retry_at_ms"] == T0 + 10_001 + 60_000
    stats = await rig.campaigns.stats(cid)
    assert stats["lost_dials"] == 1 and stats["pending"] == 1


async def test_a_refused_dial_fails_at_once(rig: Rig) -> None:
    cid = await rig.campaign([{"phone": "+15555550001", "timezone": "UTC"}], cps=100)
    rig.placer.fail["+15555550001"] = DialFailed("HTTP 400 code 21211", definite=True, code=21211)
    d = rig.dialer("A")
    await d.step()
    await d.wait_dials()
    (attempt,) = (await rig.campaigns.contact_history(cid, "1"))["attempts"]
    assert attempt["outcome"] == "failed" and "21211" in attempt["error"]


async def test_silent_placed_calls_are_looked_up_at_the_carrier(make_rig: RigFactory) -> None:
    rig = make_rig(dialer_call_grace_ms=1000)
    contacts = [{"phone": f"+1555555000{i}", "timezone": "UTC"} for i in (1, 2)]
    cid = await rig.campaign(contacts, cps=100, ring_timeout_s=10, time_limit_s=20)
    d = rig.dialer("A")
    wake = await d.step()  # one call now; the next slot 10 ms later (100 CPS)
    assert wake == T0 + 10
    rig.clock.set(T0 + 10)
    await d.step()
    await d.wait_dials()
    sids = {to: sid for sid, to in rig.placer.sids.items()}
    rig.placer.states[sids["+15555550001"]] = CarrierCallState("busy", None)
    rig.placer.states[sids["+15555550002"]] = CarrierCallState("in-progress", None)
    rig.clock.set(T0 + 31_011)  # ring 10 s + limit 20 s + grace 1 s
    await d.step()
    one = (await rig.campaigns.contact_history(cid, "1"))["attempts"][0]
    two = (await rig.campaigns.contact_history(cid, "2"))["attempts"][0]
    assert one["outcome"] == "busy"
    assert two["state"] == "placed" and two["outcome"] is None  # still live: more time
    rig.placer.states[sids["+15555550002"]] = CarrierCallState("completed", "human")
    rig.clock.set(T0 + 33_000)
    await d.step()
    two = (await rig.campaigns.contact_history(cid, "2"))["attempts"][0]
    assert two["outcome"] == "answered" and two["answered_by"] == "human"


async def test_run_loop_on_a_fake_clock_finishes_the_campaign(rig: Rig) -> None:
    contacts = [{"phone": f"+1555555000{i}", "timezone": "UTC"} for i in range(1, 4)]
    cid = await rig.campaign(contacts, cps=1)
    d = rig.dialer("A", poll_ms=60_000)
    d.start()

    def placed_all() -> bool:  # else let the loop run: it sleeps on the fake clock between slots
        if len(rig.placer.created) == 3:
            return True
        nxt = rig.clock.next_wakeup_ms()
        if nxt is not None:
            rig.clock.set(nxt)
        return False

    await wait_until(placed_all, 60, interval_s=0.005, what="3 calls placed")
    await d.stop()
    assert len(rig.placer.created) == 3
    history = [await rig.campaigns.contact_history(cid, str(n)) for n in (1, 2, 3)]
    dialed = [h["attempts"][0]["dialed_at_ms"] for h in history]
    assert dialed == [T0, T0 + 1000, T0 + 2000]  # 1 call per second
