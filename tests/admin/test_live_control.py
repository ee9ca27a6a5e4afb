"""Live calls over the real stack: the registry lists them, and hang-up, transfer and say
reach the instance holding the call through Redis pub/sub — also from another instance."""

from __future__ import annotations

import asyncio
from typing import Any

from app.phone import mask
from switchboard_sim.summary import read_call
from tests.admin.conftest import CALLER, AdminFactory, AdminStack, long_call, until, wait_live


async def test_live_call_listed_then_hung_up(admin: AdminStack) -> None:
    stack = admin.stack
    call = asyncio.create_task(stack.sim.place_inbound_call(long_call()))
    live = await wait_live(admin)
    sid = live["call_sid"]
    assert live["flow"] == "support" and live["direction"] == "inbound"
    assert live["from_masked"] == mask(CALLER) and CALLER not in str(live)

    detail = (await admin.http.get(f"/admin/calls/{sid}", headers=admin.read)).json()
    assert detail["call"]["live"] is True and detail["live"]["instance"] == live["instance"]
    listed = (await admin.http.get("/admin/calls", headers=admin.read)).json()["items"]
    assert [c["call_sid"] for c in listed] == [sid] and listed[0]["live"] is True

    # A read key may look but not touch.
    r = await admin.http.post(f"/admin/calls/{sid}/hangup", headers=admin.read)
    assert r.status_code == 403
    r = await admin.http.post(
        f"/admin/calls/{sid}/transfer", headers=admin.write, json={"target": "nobody"}
    )
    assert r.status_code == 422 and "human" in r.json()["detail"]
    r = await admin.http.post(
        f"/admin/calls/{sid}/say", headers=admin.write, json={"text": "Please hold."}
    )
    assert r.status_code == 200, r.text

    async def spoken() -> bool:
        lines = await stack.store.transcript(sid)
        return any(t["role"] == "assistant" and "Please hold." in t["text"] for t in lines)

    await until(spoken, 20)  # the agent says it once its current response is done

    r = await admin.http.post(
        f"/admin/calls/{sid}/hangup", headers=admin.write, json={"reason": "test operator"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "call_sid": sid,
        "command": "hangup",
        "detail": "hanging up",
        "instance": live["instance"],
        "data": {},
    }
    result = await asyncio.wait_for(call, 20)
    assert result.ended_by == "hangup"
    stored = await read_call(stack.store, sid, wait_s=3.0)
    assert stored["record"]["end_reason"] == "hangup: test operator"

    # Gone from the registry at once; commands on it are 404 now.
    r = await admin.http.get("/admin/live", headers=admin.read)
    assert r.json() == {"items": [], "next_cursor": None}
    r = await admin.http.post(f"/admin/calls/{sid}/hangup", headers=admin.write)
    assert r.status_code == 404


async def test_transfer_from_another_instance(make_admin: AdminFactory) -> None:
    """Instance B (its own server, same Redis) transfers a call bridged by instance A."""
    a: AdminStack = await make_admin()
    b: AdminStack = await make_admin()
    call = asyncio.create_task(a.stack.sim.place_inbound_call(long_call()))
    live = await wait_live(b)
    sid = live["call_sid"]
    assert sid in a.stack.services.live.calls and not b.stack.services.live.calls
    r = await b.http.post(f"/admin/calls/{sid}/transfer", headers=b.write, json={"target": "human"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["instance"] == live["instance"] and body["data"]["to_masked"] == mask(
        "+15550109999"
    )
    result = await asyncio.wait_for(call, 25)
    assert result.ended_by == "transfer"
    stored = await read_call(a.stack.store, sid, wait_s=3.0)
    targets = [r["target"] for r in stored["routing"]]
    assert mask("+15550109999") in targets


async def test_commands_on_unknown_calls_are_404(admin: AdminStack) -> None:
    sid = "CA" + "0" * 32
    for path, body in (
        ("hangup", None),
        ("transfer", {"to": "+15550109999"}),
        ("say", {"text": "hi"}),
    ):
        r = await admin.http.post(f"/admin/calls/{sid}/{path}", headers=admin.write, json=body)
        assert r.status_code == 404, (path, r.text)
    r = await admin.http.post(
        f"/admin/calls/{sid}/transfer", headers=admin.write, json={"to": "+1", "target": "x"}
    )
    assert r.status_code == 422
