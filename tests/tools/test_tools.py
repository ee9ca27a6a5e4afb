"""Each built-in tool through the registry, against Redis seeded with the demo CRM
(`switchboard seed-demo`, app/demo.py)."""

from __future__ import annotations

import orjson

from tests.tools.conftest import RecordingControl, make_ctx
from tools.base import Backends, ToolContext
from tools.registry import ToolRegistry, default_registry

REG: ToolRegistry = default_registry()


async def _run(name: str, args: object, ctx: ToolContext) -> tuple[dict[str, object], str | None]:
    outcome = await REG.invoke(name, "fc1", orjson.dumps(args).decode(), ctx, 4000)
    return outcome.output, outcome.error


async def test_lookup_customer_by_caller_number(ctx: ToolContext) -> None:
    output, error = await _run("lookup_customer", {}, ctx)
    assert error is None
    assert output == {
        "ok": True,
        "found": True,
        "account_id": "ACME-1001",
        "name": "Dana Whitaker",
        "phone_masked": "+155****0123",
        "tier": "gold",
    }


async def test_lookup_customer_by_phone_and_account(ctx: ToolContext) -> None:
    output, _ = await _run("lookup_customer", {"phone": "+15555550188"}, ctx)
    assert output["name"] == "Lee Park"
    output, _ = await _run("lookup_customer", {"account_id": "ACME-1001"}, ctx)
    assert output["name"] == "Dana Whitaker"
    output, _ = await _run("lookup_customer", {"account_id": "ACME-4040"}, ctx)
    assert output == {"ok": True, "found": False}
    output, error = await _run("lookup_customer", {"phone": "555-0188"}, ctx)
    assert error == "invalid_arguments"


async def test_lookup_customer_unknown_or_anonymous_caller(
    backends: Backends, control: RecordingControl
) -> None:
    for number in ("+15555550000", "anonymous", ""):
        output, error = await _run("lookup_customer", {}, make_ctx(backends, control, number))
        assert (output, error) == ({"ok": True, "found": False}, None)


async def test_get_order_status(ctx: ToolContext) -> None:
    output, error = await _run("get_order_status", {"order_id": "1042"}, ctx)
    assert error is None
    assert output["found"] is True
    assert (output["status"], output["delivery_date"], output["item"]) == (
        "shipped",
        "2026-11-24",
        "espresso machine",
    )
    output, _ = await _run("get_order_status", {"order_id": "7777"}, ctx)
    assert output == {"ok": True, "found": False, "order_id": "7777"}
    for bad in ({"order_id": "12"}, {"order_id": "10a2"}, {"order_id": 1042}, {}):
        _, error = await _run("get_order_status", bad, ctx)
        assert error == "invalid_arguments", bad


async def test_create_order_for_caller(ctx: ToolContext) -> None:
    output, error = await _run("create_order", {"item": "milk jug", "quantity": 3}, ctx)
    assert error is None
    assert output["created"] is True
    assert output["order_id"] == "2001"
    assert output["account_id"] == "ACME-1001"
    assert (output["item"], output["quantity"], output["status"]) == ("milk jug", 3, "processing")
    fetched, _ = await _run("get_order_status", {"order_id": "2001"}, ctx)
    assert fetched["item"] == "milk jug"


async def test_create_order_for_named_account_and_limits(ctx: ToolContext) -> None:
    output, _ = await _run(
        "create_order", {"item": "filters", "quantity": 20, "account_id": "ACME-1002"}, ctx
    )
    assert output["account_id"] == "ACME-1002"
    for bad in (
        {"item": "x", "quantity": 21},
        {"item": "x", "quantity": 0},
        {"item": "", "quantity": 1},
        {"item": "x", "quantity": 1.5},
    ):
        _, error = await _run("create_order", bad, ctx)
        assert error == "invalid_arguments", bad
    output, error = await _run(
        "create_order", {"item": "x", "quantity": 1, "account_id": "ACME-4040"}, ctx
    )
    assert error == "no_account"


async def test_create_order_without_account(backends: Backends, control: RecordingControl) -> None:
    ctx = make_ctx(backends, control, "+15555550000")
    output, error = await _run("create_order", {"item": "cup", "quantity": 1}, ctx)
    assert error == "no_account"
    assert output["error"]["code"] == "no_account"  # type: ignore[index]


async def test_transfer_to_named_target(ctx: ToolContext, control: RecordingControl) -> None:
    output, error = await _run("transfer_call", {"target": "human", "reason": "asked"}, ctx)
    assert error is None
    assert output == {"ok": True, "transferring_to": "+155****9999"}
    assert control.transfers == [("+15550109999", "asked")]
    assert control.routings == [("+15550109999", "asked")]


async def test_second_transfer_is_refused(ctx: ToolContext, control: RecordingControl) -> None:
    await _run("transfer_call", {"target": "Sales"}, ctx)
    output, error = await _run("transfer_call", {"target": "human"}, ctx)
    assert error == "refused"
    assert output["ok"] is False
    assert len(control.transfers) == 1 and len(control.routings) == 1


async def test_transfer_to_number_and_unknown_target(
    ctx: ToolContext, control: RecordingControl
) -> None:
    _, error = await _run("transfer_call", {"target": "billing"}, ctx)
    assert error == "unknown_target"
    _, error = await _run("transfer_call", {"target": "+1"}, ctx)
    assert error == "unknown_target"
    assert control.transfers == []
    output, error = await _run("transfer_call", {"target": "+15550107777"}, ctx)
    assert error is None and output["transferring_to"] == "+155****7777"


async def test_transfer_numbers_can_be_disallowed(
    ctx: ToolContext, control: RecordingControl
) -> None:
    strict = default_registry(allow_transfer_to_numbers=False)
    outcome = await strict.invoke("transfer_call", "fc1", '{"target": "+15550107777"}', ctx, 1000)
    assert outcome.error == "unknown_target"
    outcome = await strict.invoke("transfer_call", "fc2", '{"target": "human"}', ctx, 1000)
    assert outcome.error is None


async def test_end_call(ctx: ToolContext, control: RecordingControl) -> None:
    output, error = await _run("end_call", {"reason": "caller said bye"}, ctx)
    assert (output, error) == ({"ok": True, "ending": True}, None)
    await _run("end_call", {}, ctx)
    assert control.hangups == ["caller said bye", "conversation finished"]
