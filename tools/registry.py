"""The tool registry: definitions for ``session.update`` and safe invocation.

``invoke`` turns every failure into a structured output the model can read::

    {"ok": false, "error": {"code": "invalid_arguments", "message": "...",
                            "details": ["$.quantity: 0 is less than the minimum of 1"]}}

Codes: ``invalid_arguments``, ``timeout``, ``refused``, ``unknown_tool``, ``tool_error``
and any ``ToolError`` subclass's own ``code`` (``no_account``, ``unknown_target``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from app.errors import (
    ConfigError,
    ToolArgumentsInvalid,
    ToolError,
    ToolRefused,
    ToolTimeout,
    UnknownTool,
)
from tools.base import Tool, ToolContext, ToolOutcome
from tools.call_control import END_CALL, TRANSFER_CALL, make_transfer_call
from tools.customers import LOOKUP_CUSTOMER
from tools.dtmf import SEND_DTMF
from tools.keypad import COLLECT_DIGITS
from tools.orders import CREATE_ORDER, GET_ORDER_STATUS
from tools.outcomes import OPT_OUT, RECORD_OUTCOME

log = logging.getLogger(__name__)

#: Most schema errors listed in ``details``; each is cut to ``_MAX_DETAIL`` characters.
_MAX_DETAILS = 10
_MAX_DETAIL = 200


def error_output(code: str, message: str, details: list[str] | None = None) -> dict[str, Any]:
    """The ``{"ok": false, "error": {...}}`` output sent to the model for a failure."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"ok": False, "error": error}


class ToolRegistry:
    """Tools by name, with their JSON Schema validators compiled once at ``register``."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``. Raises ``ConfigError`` for a duplicate name or an invalid schema."""
        if tool.name in self._tools:
            raise ConfigError(f"tool {tool.name!r} is already registered")
        try:
            Draft202012Validator.check_schema(tool.parameters)
        except SchemaError as exc:
            raise ConfigError(f"tool {tool.name!r} has an invalid schema: {exc.message}") from exc
        self._tools[tool.name] = tool
        self._validators[tool.name] = Draft202012Validator(tool.parameters)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._tools)

    def definitions(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Realtime ``tools`` entries for ``names`` (a flow's ``tools`` list), in that order.

        Raises ``ConfigError`` naming every unknown tool, so a flow that names a missing
        tool fails when it is loaded rather than mid-call.
        """
        wanted = list(names)
        missing = [n for n in wanted if n not in self._tools]
        if missing:
            raise ConfigError(f"unknown tool(s) {missing}; registered: {self.names()}")
        return [self._tools[n].definition() for n in wanted]

    async def invoke(
        self,
        name: str,
        call_id: str,
        arguments_json: str,
        ctx: ToolContext,
        timeout_ms: int | None = None,
    ) -> ToolOutcome:
        """Parse, validate and run one tool call; never raises (except cancellation).

        ``arguments_json`` is the model's raw ``arguments`` string ("" means ``{}``);
        ``timeout_ms`` (default: the tool's ``timeout_ms``) bounds the tool's run.
        On success ``output`` is the tool's dict with ``"ok": true`` first and
        ``error`` is None; otherwise ``output`` is ``error_output(code, ...)`` and
        ``error`` the code. ``duration_ms`` is wall time of the whole invocation.
        """
        started = time.perf_counter()
        output, error = await self._invoke(name, arguments_json, ctx, timeout_ms)
        duration_ms = (time.perf_counter() - started) * 1000
        return ToolOutcome(
            name=name,
            call_id=call_id,
            arguments=arguments_json,
            output=output,
            error=error,
            duration_ms=duration_ms,
        )

    async def _invoke(
        self, name: str, arguments_json: str, ctx: ToolContext, timeout_ms: int | None
    ) -> tuple[dict[str, Any], str | None]:
        tool = self._tools.get(name)
        if tool is None:
            return self._fail(UnknownTool(f"there is no tool named {name!r}"))
        try:
            arguments = orjson.loads(arguments_json) if arguments_json.strip() else {}
        except orjson.JSONDecodeError as exc:
            return self._fail(ToolArgumentsInvalid(f"arguments are not valid JSON: {exc}"))
        if not isinstance(arguments, dict):
            return self._fail(ToolArgumentsInvalid("arguments must be a JSON object"))
        errors = sorted(
            self._validators[name].iter_errors(arguments), key=lambda e: list(e.absolute_path)
        )
        if errors:
            details = [f"{e.json_path}: {e.message}"[:_MAX_DETAIL] for e in errors[:_MAX_DETAILS]]
            invalid = ToolArgumentsInvalid(f"arguments do not match the {name} schema")
            return self._fail(invalid, details)

        limit_ms = tool.timeout_ms if timeout_ms is None else timeout_ms
        try:
            async with asyncio.timeout(limit_ms / 1000) as deadline:
                result = await tool.fn(arguments, ctx)
        except TimeoutError as exc:
            if deadline.expired():
                return self._fail(ToolTimeout(f"{name} did not answer within {limit_ms} ms"))
            return self._crash(name, ctx, exc)
        except ToolError as exc:  # includes ToolRefused
            return self._fail(exc)
        except Exception as exc:
            return self._crash(name, ctx, exc)

        if not isinstance(result, dict):
            return self._crash(name, ctx, TypeError(f"{name} returned {type(result).__name__}"))
        try:
            orjson.dumps(result)
        except TypeError as exc:
            return self._crash(name, ctx, exc)
        ok = result.get("ok", True)
        output = {"ok": ok, **{k: v for k, v in result.items() if k != "ok"}}
        if ok is not True:
            code = (
                result.get("error", {}).get("code")
                if isinstance(result.get("error"), dict)
                else None
            )
            return output, str(code or ToolError.code)
        return output, None

    @staticmethod
    def _fail(exc: ToolError, details: list[str] | None = None) -> tuple[dict[str, Any], str]:
        code = exc.code
        message = str(exc) or code
        if isinstance(exc, ToolRefused) and not str(exc):
            message = "this action is not allowed now"
        return error_output(code, message, details), code

    @staticmethod
    def _crash(name: str, ctx: ToolContext, exc: BaseException) -> tuple[dict[str, Any], str]:
        log.error("tool %s failed on call %s", name, ctx.call.call_sid, exc_info=exc)
        code = ToolError.code
        return error_output(
            code, f"{name} failed unexpectedly; try again or continue without it"
        ), code


def default_registry(*, allow_transfer_to_numbers: bool = True) -> ToolRegistry:
    """A registry with every built-in tool: ``lookup_customer``, ``get_order_status``,
    ``create_order``, ``transfer_call``, ``end_call``, ``opt_out``, ``record_outcome``,
    ``collect_digits``, ``send_dtmf`` (both run by the call session).

    ``allow_transfer_to_numbers=False`` limits ``transfer_call`` to the flow's named targets.
    """
    transfer = (
        TRANSFER_CALL if allow_transfer_to_numbers else make_transfer_call(allow_numbers=False)
    )
    return ToolRegistry(
        [
            LOOKUP_CUSTOMER,
            GET_ORDER_STATUS,
            CREATE_ORDER,
            transfer,
            END_CALL,
            OPT_OUT,
            RECORD_OUTCOME,
            COLLECT_DIGITS,
            SEND_DTMF,
        ]
    )
