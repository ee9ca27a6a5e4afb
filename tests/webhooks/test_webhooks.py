"""Signed event webhooks over the real server, Redis and a receiver on a real socket:
subscriptions over the API, each event delivered once and signed, retries through an
outage with the attempts in the delivery log, dead letters after the retry window, a
hanging receiver timed out, and destinations the policy refuses."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from app.events import EventBus
from app.store.event_keys import EventKeys
from app.webhooks.signing import sign, verify
from app.webhooks.subscriptions import address_refusal, check_url, destination_refusal
from tests.admin.conftest import AdminFactory, AdminStack
from tests.helpers import wait_until
from tests.webhooks.receiver import Receiver, running

FAST = {
    "events_poll_ms": 20,
    "webhook_retry_base_ms": 50,
    "webhook_retry_max_ms": 400,
}


async def subscribe(admin: AdminStack, url: str, events: list[str]) -> dict[str, Any]:
    r = await admin.http.post(
        "/admin/webhooks", headers=admin.write, json={"url": url, "events": events}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def bus(admin: AdminStack) -> EventBus:
    return EventBus.from_settings(admin.stack.redis, admin.stack.settings)


async def log_of(admin: AdminStack, sub_id: str) -> list[dict[str, Any]]:
    r = await admin.http.get(f"/admin/webhooks/{sub_id}/deliveries", headers=admin.read)
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))  # oldest first


async def test_each_event_arrives_once_signed_with_retries_through_an_outage(
    make_admin: AdminFactory,
) -> None:
    admin: AdminStack = await make_admin(**FAST)
    # Down for the first four requests (503, then a refused 500…), then up.
    receiver = Receiver(answer=lambda n: 503 if n < 4 else 200)
    async with running(receiver):
        made = await subscribe(admin, receiver.url, ["call.ended", "campaign.finished"])
        sub, secret = made["webhook"], made["secret"]
        assert secret.startswith("whsec_") and sub["secret_hint"].endswith(secret[-4:])
        listed = (await admin.http.get("/admin/webhooks", headers=admin.read)).json()
        assert [w["id"] for w in listed["items"]] == [sub["id"]]
        assert secret not in str(listed)

        events = bus(admin)
        wanted = [
            await events.emit("call.ended", {"call_sid": "CA1", "end_reason": "caller hung up"}),
            await events.emit("campaign.finished", {"campaign_id": "cmp_1"}),
            await events.emit("call.ended", {"call_sid": "CA2"}),
        ]
        await events.emit("call.started", {"call_sid": "CA3"})  # not subscribed
        await wait_until(lambda: len(receiver.delivered()) >= 3, 20)

    got = receiver.delivered()
    assert sorted(r.event["id"] for r in got) == sorted(e.id for e in wanted)  # each once
    by_id = {e.id: e for e in wanted}
    for r in got:
        event = by_id[r.event["id"]]
        assert r.body == event.body  # the envelope, byte for byte
        assert r.headers["content-type"] == "application/json"
        assert r.headers["switchboard-event"] == event.type
        assert r.headers["switchboard-event-id"] == event.id
        header = r.headers["switchboard-signature"]
        assert verify(secret, header, r.body)
        assert not verify("whsec_wrong", header, r.body)
        assert not verify(secret, header, r.body + b" ")
    assert all(r.event["type"] != "call.started" for r in receiver.requests)
    assert len(receiver.requests) == 3 + 4  # the four failures were retried
    assert max(int(r.headers["switchboard-delivery-attempt"]) for r in got) >= 2

    log = await log_of(admin, sub["id"])
    assert sorted(e["outcome"] for e in log) == ["delivered"] * 3 + ["retry"] * 4
    retry = next(e for e in log if e["outcome"] == "retry")
    assert retry["status"] == 503 and retry["error"] == "HTTP 503"
    assert retry["next_at_ms"] > retry["at_ms"]
    for event in wanted:  # attempts numbered 1, 2, … per event
        attempts = [e["attempt"] for e in log if e["event_id"] == event.id]
        assert attempts == list(range(1, len(attempts) + 1))


async def test_a_delivery_is_dead_lettered_after_the_retry_window(
    make_admin: AdminFactory,
) -> None:
    admin: AdminStack = await make_admin(**FAST, webhook_retry_window_s=1)
    receiver = Receiver(answer=lambda n: 500)
    async with running(receiver):
        sub = (await subscribe(admin, receiver.url, ["*"]))["webhook"]
        event = await bus(admin).emit("call.analyzed", {"call_sid": "CA9"})

        async def dead() -> bool:
            return any(e["outcome"] == "dead" for e in await log_of(admin, sub["id"]))

        await wait_until(dead, 20)
        tries = len(receiver.requests)
        await asyncio.sleep(0.5)  # several retry periods
        assert len(receiver.requests) == tries  # no attempt after the dead letter

    log = await log_of(admin, sub["id"])
    assert [e["outcome"] for e in log] == ["retry"] * (len(log) - 1) + ["dead"]
    assert {e["event_id"] for e in log} == {event.id} and 3 <= len(log) <= 8
    dead = await admin.stack.redis.xrange(EventKeys(admin.stack.settings.redis_prefix).dead)
    assert len(dead) == 1 and event.id in dead[0][1]["d"]


async def test_a_hanging_receiver_is_timed_out_and_others_still_get_theirs(
    make_admin: AdminFactory,
) -> None:
    admin: AdminStack = await make_admin(**FAST, webhook_timeout_ms=300)
    slow, fast = Receiver(hang_s=30), Receiver()
    async with running(slow), running(fast):
        slow_sub = (await subscribe(admin, slow.url, ["call.ended"]))["webhook"]
        await subscribe(admin, fast.url, ["call.ended"])
        event = await bus(admin).emit("call.ended", {"call_sid": "CA5"})
        await wait_until(lambda: len(fast.delivered()) == 1, 20)
        assert fast.delivered()[0].event["id"] == event.id

        async def timed_out() -> bool:
            log = await log_of(admin, slow_sub["id"])
            return any("no answer within" in e["error"] for e in log)

        await wait_until(timed_out, 20)


async def test_ping_disable_update_delete(admin: AdminStack) -> None:
    receiver = Receiver()
    async with running(receiver):
        made = await subscribe(admin, receiver.url, ["call.started"])
        sub_id = made["webhook"]["id"]
        r = await admin.http.post(f"/admin/webhooks/{sub_id}/ping", headers=admin.write)
        assert r.status_code == 202
        ping_id = r.json()["event_id"]
        await wait_until(lambda: len(receiver.delivered()) == 1, 20)
        assert receiver.delivered()[0].event["id"] == ping_id
        assert receiver.delivered()[0].event["type"] == "webhook.ping"

        r = await admin.http.patch(
            f"/admin/webhooks/{sub_id}",
            headers=admin.write,
            json={"rotate_secret": True, "events": ["*"], "description": "crm"},
        )
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["secret"] and rotated["secret"] != made["secret"]
        assert rotated["webhook"]["events"] == ["*"] and rotated["webhook"]["description"] == "crm"
        r = await admin.http.patch(f"/admin/webhooks/{sub_id}", headers=admin.read, json={})
        assert r.status_code == 403

    r = await admin.http.patch(
        f"/admin/webhooks/{sub_id}", headers=admin.write, json={"events": ["call.nope"]}
    )
    assert r.status_code == 422 and "call.nope" in r.json()["detail"]
    assert (
        await admin.http.delete(f"/admin/webhooks/{sub_id}", headers=admin.write)
    ).status_code == 204
    r = await admin.http.get(f"/admin/webhooks/{sub_id}", headers=admin.read)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    audit = (await admin.http.get("/admin/audit", headers=admin.read)).json()["items"]
    mine = [e for e in audit if e["target"] == sub_id or e["detail"].get("id") == sub_id]
    # Every write is audited, whatever its answer (the read key's 403, the bad 422).
    assert sorted((e["action"], e["status"]) for e in mine) == [
        ("webhook.create", 201),
        ("webhook.delete", 204),
        ("webhook.ping", 202),
        ("webhook.update", 200),
        ("webhook.update", 403),
        ("webhook.update", 422),
    ]


@pytest.mark.parametrize(
    ("url", "policy", "ok"),
    [
        ("https://hooks.example.com/x", "public", True),
        ("http://127.0.0.1:9/x", "public", False),
        ("http://10.0.0.5/x", "public", False),
        ("http://169.254.169.254/latest/meta-data", "public", False),
        ("http://[::1]/x", "public", False),
        ("http://[::ffff:10.0.0.1]/x", "public", False),
        ("http://127.0.0.1:9/x", "loopback", True),
        ("http://localhost:9/x", "loopback", True),
        ("https://hooks.example.com/x", "loopback", False),
        ("http://10.0.0.5/x", "any", True),
        ("ftp://example.com/x", "any", False),
        ("http://user:pw@example.com/x", "any", False),
        ("http:///nohost", "any", False),
    ],
)
def test_destinations_the_policy_allows(url: str, policy: Any, ok: bool) -> None:
    if ok:
        check_url(url, policy)
    else:
        with pytest.raises(ValueError):
            check_url(url, policy)


async def test_names_are_checked_when_resolved(admin: AdminStack) -> None:
    assert "not a public address" in await destination_refusal("http://localhost:1/x", "public")
    assert await destination_refusal("http://localhost:1/x", "loopback") == ""
    assert address_refusal(ipaddress.ip_address("8.8.8.8"), "public") == ""
    r = await admin.http.post(
        "/admin/webhooks",
        headers=admin.write,
        json={"url": "http://10.1.2.3/hook", "events": ["call.ended"]},
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_signature_scheme() -> None:
    body = b'{"id":"evt_1"}'
    header = sign("whsec_k", body, timestamp=1_767_225_600)
    t, v1 = header.split(",")
    assert t == "t=1767225600" and len(v1) == len("v1=") + 64
    assert verify("whsec_k", header, body, now=1_767_225_600 + 299)
    assert not verify("whsec_k", header, body, now=1_767_225_600 + 301)  # too old: replay
    assert not verify("whsec_k", "garbage", body)
