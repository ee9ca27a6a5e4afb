"""The dialer on the real Redis Cluster: every Lua script's keys in one slot (the
campaign's), leases, fencing, CPS across dialers, and several dialers racing for one
campaign's contacts, each contact dialled exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis.asyncio as aioredis

from app.store.redis import is_cluster
from tests.dialer.conftest import Rig
from tests.dialer.test_dialer import (  # noqa: F401  (run again, here on the cluster)
    test_a_dead_dialers_lease_is_recovered_by_another,
    test_dnc_and_opt_outs_are_checked_right_before_the_dial,
    test_run_loop_on_a_fake_clock_finishes_the_campaign,
)
from tests.dialer.test_lifecycle import (  # noqa: F401
    test_pause_stops_new_dials_and_resume_continues,
    test_waiting_contacts_expire_at_end_at,
)
from tests.dialer.test_store import (  # noqa: F401
    test_calls_per_second_across_dialers_and_campaigns,
    test_cancel_ends_waiting_contacts_and_refuses_imports,
    test_concurrency_cap_holds_across_owners,
    test_dial_is_fenced_by_the_lease,
    test_duplicates_against_the_campaign_are_rejected_with_rows,
    test_finish_happens_once_and_schedules_the_retry,
    test_progress_only_moves_forward,
)


async def test_the_campaigns_keys_spread_over_the_cluster(
    rig: Rig, redis_client: aioredis.Redis
) -> None:
    cids = [
        await rig.campaign([{"phone": f"+1555555{i:04d}", "timezone": "UTC"}]) for i in range(12)
    ]
    slot_of = redis_client.get_node_from_key  # type: ignore[attr-defined]
    k = rig.runtime.store.keys
    for cid in cids:  # one campaign: one node
        own = (k.campaign(cid), k.campaign_due(cid), k.contact(cid, 1))
        assert {slot_of(key).name for key in own} == {slot_of(k.campaign(cid)).name}
    assert len({slot_of(k.campaign(cid)).name for cid in cids}) > 1  # campaigns: many nodes


async def test_several_dialers_dial_each_contact_exactly_once(rig: Rig) -> None:
    contacts = [{"phone": f"+1555556{i:04d}", "timezone": "UTC"} for i in range(40)]
    assert is_cluster(rig.store.redis)
    cid = await rig.campaign(contacts, cps=100, max_concurrent=8)
    dialers = [rig.dialer(name, poll_ms=20) for name in ("A", "B", "C")]

    async def racing() -> None:  # three dialers' passes interleaved on one fake clock
        while len(rig.placer.created) < len(contacts):
            await asyncio.gather(*(d.step() for d in dialers))
            for d in dialers:
                await d.wait_dials()
            for sid in list(rig.placer.sids):  # each placed call ends: its slot frees
                await rig.campaigns.on_status({"CallSid": sid, "CallStatus": "completed"}, None)
                rig.placer.sids.pop(sid)
            rig.clock.set(rig.clock.now_ms() + 50)

    await asyncio.wait_for(racing(), 60)
    dialled = Counter(c.to for c in rig.placer.created)
    assert len(dialled) == len(contacts) and set(dialled.values()) == {1}
    stats = await rig.campaigns.stats(cid)
    assert stats["attempts"] == len(contacts)
    owners = set()
    for n in range(1, len(contacts) + 1):
        history = await rig.campaigns.contact_history(cid, str(n))
        assert len(history["attempts"]) == 1
        owners.add(history["attempts"][0]["owner"])
    assert len(owners) > 1  # the work really was shared
    assert stats["in_progress"] == 0
