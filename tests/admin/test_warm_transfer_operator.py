"""The operator's warm transfer over the admin API: the agent says the hold line, the
target (busy) is rung, the caller comes back to the agent, and the call page shows every
step."""

from __future__ import annotations

import asyncio
from typing import Any

from switchboard_sim.calls import CallScript
from switchboard_sim.dial import TargetRule
from switchboard_sim.summary import read_call
from tests.admin.conftest import CALLER, SUPPORT, AdminFactory, AdminStack, long_call, wait_live

HUMAN = "+15550109999"


async def test_operator_warm_transfer_comes_back_and_shows_on_the_call_page(
    make_admin: AdminFactory,
) -> None:
    a: AdminStack = await make_admin(transfer_ring_timeout_s=1)
    a.stack.sim.targets[HUMAN] = TargetRule("busy")
    back = CallScript(from_number=CALLER, to_number=SUPPORT, hangup_after_ms=800, max_duration_s=20)
    call = asyncio.create_task(a.stack.sim.place_inbound_call(long_call(after_transfer=back)))
    sid = (await wait_live(a))["call_sid"]
    body = {"target": "human", "mode": "warm", "reason": "operator: needs billing"}
    r = await a.http.post(f"/admin/calls/{sid}/transfer", headers=a.write, json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    assert data == {"to_masked": "+155****9999", "mode": "warm"}
    result = await asyncio.wait_for(call, 40)
    assert result.ended_by == "transfer" and result.dial is not None
    assert result.dial.dial_call_status == "busy"
    assert result.after_transfer is not None and result.after_transfer.ended_by == "caller_hangup"
    stored = await read_call(a.stack.store, sid)
    said = [t["text"] for t in stored["transcript"] if t["role"] == "assistant"]
    hold = a.stack.services.flows.default.transfer.hold_line
    assert hold in said and said[-1] == a.stack.services.flows.default.transfer.lines.busy
    reasons = [e["reason"] for e in stored["routing"]]
    assert reasons[1:] == [
        "warm transfer requested: operator: needs billing",
        "warm transfer: dialing (rings 1 s)",
        "warm transfer: busy",
        "warm transfer: returned to agent",
    ]
    # The call page (an operator's session) lists every step.
    login = await a.http.post(
        "/admin/ui/login", data={"key": a.write_key, "next": f"/admin/ui/calls/{sid}"}
    )
    assert login.status_code == 303
    page = await a.http.get(f"/admin/ui/calls/{sid}")  # the client keeps the session cookie
    assert page.status_code == 200
    for reason in reasons[1:]:
        assert reason in page.text
