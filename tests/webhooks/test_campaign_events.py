"""Campaign events reach a subscribed receiver: one ``campaign.contact_finished`` per
contact with its outcome, one ``campaign.finished``, and ``call.ended`` for each call
that was answered but ended without a media stream (the carrier simulator's silent
callee; a busy call never had a call record, so it is only in its contact's events),
all signed."""

from __future__ import annotations

from collections import Counter

import httpx

from app.webhooks.signing import verify
from switchboard_sim.outbound import Callee
from tests.admin.conftest import AdminFactory, AdminStack
from tests.e2e.test_campaign_api import QUICK, SPEC
from tests.helpers import wait_until
from tests.webhooks.receiver import Receiver, running

CSV = (
    "phone,timezone,first_name,appointment\n"
    "+15555557101,UTC,Ann,Monday 9 AM\n"
    "+15555557102,UTC,Bo,Tuesday 10 AM\n"
)


async def test_campaign_events_are_delivered(make_admin: AdminFactory) -> None:
    admin: AdminStack = await make_admin(
        dialer_poll_ms=50, dialer_account_cps=20, events_poll_ms=20
    )
    stack = admin.stack
    stack.rest.outbound.rules.default = QUICK
    stack.rest.outbound.rules.set("+15555557102", Callee("busy", ring_ms=20), QUICK)
    receiver = Receiver()
    async with running(receiver):
        r = await admin.http.post(
            "/admin/webhooks",
            headers=admin.write,
            json={"url": receiver.url, "events": ["*"]},
        )
        secret = r.json()["secret"]
        http: httpx.AsyncClient = admin.http
        cid = (await http.post("/admin/campaigns", json=SPEC, headers=admin.write)).json()["id"]
        await http.post(
            f"/admin/campaigns/{cid}/contacts",
            content=CSV,
            headers={**admin.write, "Content-Type": "text/csv"},
        )
        assert (await http.post(f"/admin/campaigns/{cid}/start", headers=admin.write)).is_success

        def finished() -> bool:
            return any(r.event["type"] == "campaign.finished" for r in receiver.delivered())

        await wait_until(finished, 120, what="campaign.finished delivered")
        await wait_until(
            lambda: sum(r.event["type"] == "call.ended" for r in receiver.delivered()) >= 2,
            30,
            what="call.ended for the two answered calls",
        )

    events = [r.event for r in receiver.delivered()]
    assert all(
        verify(secret, r.headers["switchboard-signature"], r.body) for r in receiver.requests
    )
    assert len({e["id"] for e in events}) == len(events)  # nothing twice
    contacts = [e["data"] for e in events if e["type"] == "campaign.contact_finished"]
    assert sorted((c["contact_id"], c["outcome"]) for c in contacts) == [
        ("1", "answered"),
        ("2", "answered"),
    ]
    assert all(c["campaign_id"] == cid and "*" in c["phone_masked"] for c in contacts)
    done = [e["data"] for e in events if e["type"] == "campaign.finished"]
    assert len(done) == 1 and done[0]["status"] == "completed"
    assert done[0]["outcomes"] == {"answered": 2} and done[0]["attempts"] == 3
    ended = Counter(e["data"]["end_reason"] for e in events if e["type"] == "call.ended")
    assert ended == {"completed": 2}
    assert "+15555557101" not in str(events)  # numbers only masked
