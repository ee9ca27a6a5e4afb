"""Transfers go only to a flow's named targets or allow-listed numbers, never to premium,
unlisted international or do-not-call numbers: operator, model and the REST client."""

from __future__ import annotations

import asyncio

import pytest

from app.carrier.rest import TwilioCalls
from app.carrier.transfers import PolicedControl, TransferPolicy
from app.errors import ToolRefused, TransferRefused
from app.settings import DEFAULT_REFUSED_PREFIXES
from tests.admin.conftest import AdminFactory, AdminStack, long_call, wait_live

TARGETS = {"human": "+15550109999", "sales": "+15550108888"}


def test_policy_rules() -> None:
    policy = TransferPolicy([], DEFAULT_REFUSED_PREFIXES, ["+1"])
    assert policy.refusal("+15550109999", TARGETS.values()) is None
    assert "neither" in (policy.refusal("+15550107777", TARGETS.values()) or "")
    assert "E.164" in (policy.refusal("nope", TARGETS.values()) or "")
    assert policy.destination_refusal("+19005550100") == "premium-rate or high-cost destination"
    assert policy.destination_refusal("+18095550100") == "premium-rate or high-cost destination"
    assert policy.destination_refusal("+442071234567") == "international destination"
    assert policy.destination_refusal("+17875550100") is None  # Puerto Rico is domestic

    broad = TransferPolicy(["+1*"], DEFAULT_REFUSED_PREFIXES, ["+1"])
    assert broad.refusal("+15550107777", []) is None
    assert broad.listed("+19005550100")  # explicitly listed: the operator chose it
    narrow = TransferPolicy(["+1555010????", "+442071234567"], DEFAULT_REFUSED_PREFIXES)
    assert narrow.refusal("+15550107777", []) is None
    assert narrow.refusal("+155501077770", []) is not None  # one digit too many
    assert narrow.refusal("+442071234567", []) is None  # listed international
    assert narrow.refusal("+19005550100", []) is not None
    # A premium flow target is refused too unless it is listed.
    assert policy.refusal("+19005550100", ["+19005550100"]) is not None


class _Recorder:
    def __init__(self) -> None:
        self.transfers: list[str] = []

    def request_transfer(self, to_number: str, reason: str, mode: str | None = None) -> None:
        self.transfers.append(to_number)

    def request_hangup(self, reason: str) -> None: ...

    def record_routing(self, target: str, reason: str) -> None: ...


def test_model_transfers_are_policed() -> None:
    inner = _Recorder()
    control = PolicedControl(inner, TransferPolicy([], DEFAULT_REFUSED_PREFIXES), TARGETS)
    control.request_transfer("+15550109999", "asked for a person")
    for number in ("+19005550100", "+15550107777", "+442071234567"):
        with pytest.raises(ToolRefused):
            control.request_transfer(number, "the caller said so")
    assert inner.transfers == ["+15550109999"]


async def test_rest_client_refuses_what_its_guard_refuses() -> None:
    asked: list[str] = []

    async def guard(number: str) -> str | None:
        asked.append(number)
        return "on the do-not-call list" if number.endswith("9999") else None

    # Nothing listens on port 9: a request that got through would fail differently.
    calls = TwilioCalls("AC" + "1" * 32, "t" * 32, "http://127.0.0.1:9", 0.5, guard=guard)
    with pytest.raises(TransferRefused, match="do-not-call"):
        await calls.transfer("CA" + "2" * 32, "+15550109999")
    assert asked == ["+15550109999"]


async def _transfer(admin: AdminStack, sid: str, body: dict[str, str]) -> tuple[int, str]:
    r = await admin.http.post(f"/admin/calls/{sid}/transfer", headers=admin.write, json=body)
    return r.status_code, r.json()["detail"] if r.status_code != 200 else ""


async def test_operator_transfers_only_where_allowed(make_admin: AdminFactory) -> None:
    admin: AdminStack = await make_admin(transfer_allowed_numbers=["+1555*"])
    stack = admin.stack
    call = asyncio.create_task(stack.sim.place_inbound_call(long_call()))
    sid = (await wait_live(admin))["call_sid"]

    status, detail = await _transfer(admin, sid, {"to": "+19005550100"})
    assert status == 422 and "premium" in detail
    status, detail = await _transfer(admin, sid, {"to": "+442071234567"})
    assert status == 422 and "international" in detail
    status, detail = await _transfer(admin, sid, {"to": "+12125550100"})
    assert status == 422 and "allowed list" in detail
    r = await admin.http.post(
        "/admin/dnc", headers=admin.write, json={"number": "+15550109999", "reason": "asked"}
    )
    assert r.status_code == 201
    status, detail = await _transfer(admin, sid, {"target": "human"})
    assert status == 422 and "do-not-call" in detail
    assert not call.done() and stack.sim.live_calls[sid].transferred_to is None

    status, _ = await _transfer(admin, sid, {"to": "+15550107777"})  # on the allowed list
    assert status == 200
    result = await asyncio.wait_for(call, 20)
    assert result.ended_by == "transfer" and result.transferred_to == "+15550107777"


async def test_without_an_allow_list_only_flow_targets(admin: AdminStack) -> None:
    stack = admin.stack
    call = asyncio.create_task(stack.sim.place_inbound_call(long_call()))
    sid = (await wait_live(admin))["call_sid"]
    status, detail = await _transfer(admin, sid, {"to": "+15550107777"})
    assert status == 422 and "flow" in detail
    status, _ = await _transfer(admin, sid, {"target": "sales"})
    assert status == 200
    result = await asyncio.wait_for(call, 20)
    assert result.transferred_to == "+15550108888"
