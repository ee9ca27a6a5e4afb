"""ToolRegistry: validation, timeouts, refusals and crashes become structured outputs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from app.errors import ConfigError, ToolError, ToolRefused
from flows import FlowCatalog
from tools.base import Tool, ToolContext
from tools.registry import ToolRegistry, default_registry

ECHO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["text"],
    "additionalProperties": False,
}


async def _echo(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"echo": args["text"], "call": ctx.call.call_sid}


def _tool(name: str, fn: Any, timeout_ms: int = 1000) -> Tool:
    return Tool(
        name=name, description=f"{name} test", parameters=ECHO_SCHEMA, fn=fn, timeout_ms=timeout_ms
    )


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([_tool("echo", _echo)])


async def test_valid_call(registry: ToolRegistry, ctx: ToolContext) -> None:
    outcome = await registry.invoke("echo", "fc1", '{"text": "hi", "n": 2}', ctx, 1000)
    assert outcome.error is None
    assert outcome.output == {"ok": True, "echo": "hi", "call": "CA1"}
    assert next(iter(outcome.output)) == "ok"
    assert (outcome.name, outcome.call_id, outcome.arguments) == (
        "echo",
        "fc1",
        '{"text": "hi", "n": 2}',
    )
    assert outcome.duration_ms >= 0


async def test_bad_json(registry: ToolRegistry, ctx: ToolContext) -> None:
    outcome = await registry.invoke("echo", "fc1", '{"text": ', ctx, 1000)
    assert outcome.error == "invalid_arguments"
    assert outcome.output["ok"] is False
    assert outcome.output["error"]["code"] == "invalid_arguments"
    assert "not valid JSON" in outcome.output["error"]["message"]
    outcome = await registry.invoke("echo", "fc1", '["text"]', ctx, 1000)
    assert outcome.error == "invalid_arguments"


async def test_schema_violation_lists_details(registry: ToolRegistry, ctx: ToolContext) -> None:
    outcome = await registry.invoke("echo", "fc1", '{"n": 9, "extra": 1}', ctx, 1000)
    assert outcome.error == "invalid_arguments"
    details = outcome.output["error"]["details"]
    assert any(d.startswith("$: ") and "'text' is a required property" in d for d in details)
    assert any(d.startswith("$.n: ") and "maximum" in d for d in details)
    assert any("extra" in d for d in details)


async def test_timeout(ctx: ToolContext) -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def hang(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        started.set()
        await never.wait()
        return {}

    registry = ToolRegistry([_tool("hang", hang, timeout_ms=20)])
    outcome = await registry.invoke("hang", "fc1", '{"text": "x"}', ctx)
    assert started.is_set()
    assert outcome.error == "timeout"
    assert outcome.output == {
        "ok": False,
        "error": {"code": "timeout", "message": "hang did not answer within 20 ms"},
    }
    assert outcome.duration_ms >= 20


async def test_refused_and_tool_error(ctx: ToolContext) -> None:
    async def refuse(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise ToolRefused("already transferring")

    class Custom(ToolError):
        code = "custom_code"

    async def custom(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise Custom("nope")

    registry = ToolRegistry([_tool("refuse", refuse), _tool("custom", custom)])
    outcome = await registry.invoke("refuse", "fc1", '{"text": "x"}', ctx, 1000)
    assert outcome.error == "refused"
    assert outcome.output["error"] == {"code": "refused", "message": "already transferring"}
    outcome = await registry.invoke("custom", "fc2", '{"text": "x"}', ctx, 1000)
    assert outcome.error == "custom_code"


async def test_exception_is_tool_error_with_safe_message(
    ctx: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise KeyError("secret internal detail")

    async def own_timeout(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise TimeoutError("upstream")

    async def not_json(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"when": object()}

    registry = ToolRegistry(
        [_tool("crash", crash), _tool("own_timeout", own_timeout), _tool("not_json", not_json)]
    )
    with caplog.at_level(logging.ERROR, logger="tools.registry"):
        outcome = await registry.invoke("crash", "fc1", '{"text": "x"}', ctx, 1000)
    assert outcome.error == "tool_error"
    assert "secret" not in repr(outcome.output)
    assert any(r.exc_info and "crash" in r.getMessage() for r in caplog.records)
    outcome = await registry.invoke("own_timeout", "fc1", '{"text": "x"}', ctx, 1000)
    assert outcome.error == "tool_error"
    outcome = await registry.invoke("not_json", "fc1", '{"text": "x"}', ctx, 1000)
    assert outcome.error == "tool_error"


async def test_unknown_tool(registry: ToolRegistry, ctx: ToolContext) -> None:
    outcome = await registry.invoke("nope", "fc1", "{}", ctx, 1000)
    assert outcome.error == "unknown_tool"
    assert outcome.output["ok"] is False


async def test_cancellation_propagates(ctx: ToolContext) -> None:
    never = asyncio.Event()

    async def hang(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        await never.wait()
        return {}

    registry = ToolRegistry([_tool("hang", hang, timeout_ms=60_000)])
    task = asyncio.create_task(registry.invoke("hang", "fc1", '{"text": "x"}', ctx))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_register_rejects_duplicates_and_bad_schemas() -> None:
    registry = ToolRegistry([_tool("echo", _echo)])
    with pytest.raises(ConfigError):
        registry.register(_tool("echo", _echo))
    bad = Tool(name="bad", description="", parameters={"type": 12}, fn=_echo)
    with pytest.raises(ConfigError):
        registry.register(bad)


def test_definitions_and_unknown_names() -> None:
    registry = default_registry()
    assert registry.names() == [
        "lookup_customer",
        "get_order_status",
        "create_order",
        "transfer_call",
        "end_call",
        "opt_out",
        "record_outcome",
        "collect_digits",
        "send_dtmf",
    ]
    defs = registry.definitions(["end_call", "lookup_customer"])
    assert [d["name"] for d in defs] == ["end_call", "lookup_customer"]
    assert all(d["type"] == "function" and d["description"] for d in defs)
    with pytest.raises(ConfigError, match="missing_tool"):
        registry.definitions(["end_call", "missing_tool"])


def test_shipped_flows_name_only_known_tools() -> None:
    registry = default_registry()
    for flow in FlowCatalog.load().flows.values():
        assert len(registry.definitions(flow.tools)) == len(flow.tools)
