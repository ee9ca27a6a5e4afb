"""``/admin/live`` and live-call control: hang up, transfer, say (write scope).

Commands reach whichever instance bridges the call through Redis pub/sub
(``app.admin.control``); a call that is not live anywhere is 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app import metrics
from app.admin.calls import live_info
from app.admin.control import send_command
from app.admin.live import live_call, live_calls
from app.admin.schemas import (
    CommandResult,
    HangupRequest,
    LiveCallPage,
    SayRequest,
    TransferRequest,
)
from app.admin.service import storage_errors
from app.api.auth import (
    ADMIN_ERRORS,
    ADMIN_ERRORS_404,
    AdminRead,
    AdminWrite,
    ErrorBody,
    ValidationErrorBody,
)
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from app.api.routes.admin_calls import CallSid

router = APIRouter(prefix="/admin", tags=["admin: live calls"])

_COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    **ADMIN_ERRORS_404,
    404: {"model": ErrorBody, "description": "The call is not live (call_not_live)"},
    409: {"model": ErrorBody, "description": "The call cannot take this command now"},
    422: {
        "model": ValidationErrorBody,
        "description": (
            "Bad arguments (unknown target, not a number), or a transfer destination that"
            " is refused: not a flow target nor on transfer_allowed_numbers, premium-rate,"
            " unlisted international, or on the do-not-call list"
        ),
    },
    504: {"model": ErrorBody, "description": "The instance holding the call did not answer"},
}


@router.get("/live", summary="Calls in progress on every instance", responses=ADMIN_ERRORS)
async def list_live_calls(services: ServicesDep, principal: AdminRead) -> LiveCallPage:
    with storage_errors():
        calls = await live_calls(services.redis, services.keys)
    return LiveCallPage(items=[live_info(c) for c in calls], next_cursor=None)


async def _command(
    services: ServicesDep,
    principal: AdminWrite,
    call_sid: str,
    op: str,
    args: dict[str, Any],
    request: Request | None = None,
) -> CommandResult:
    if request is not None:  # what the audit trail records (numbers are masked there)
        request.state.audit = {k: v for k, v in args.items() if v is not None}
    with storage_errors():
        entry = await live_call(services.redis, services.keys, call_sid)
        if entry is None:
            metrics.CONTROL_COMMANDS.labels(op, "404").inc()
            raise ApiError(404, "call is not live", code="call_not_live")
        reply = await send_command(
            services.redis,
            services.keys,
            entry.instance,
            op,
            call_sid,
            args,
            by=principal.label,
            timeout_s=services.settings.control_timeout_ms / 1000,
        )
    if reply.status != 200:
        code = "call_not_live" if reply.status == 404 else None
        raise ApiError(reply.status, reply.detail, code=code)
    return CommandResult(
        call_sid=call_sid,
        command=op,
        detail=reply.detail,
        instance=entry.instance,
        data=reply.data,
    )


@router.post(
    "/calls/{call_sid}/hangup", summary="Hang a live call up now", responses=_COMMAND_ERRORS
)
async def hangup_call(
    request: Request,
    services: ServicesDep,
    principal: AdminWrite,
    call_sid: CallSid,
    body: HangupRequest | None = None,
) -> CommandResult:
    reason = body.reason if body else "operator"
    return await _command(services, principal, call_sid, "hangup", {"reason": reason}, request)


@router.post(
    "/calls/{call_sid}/transfer",
    summary="Transfer a live call to a number or to a named target of its flow",
    responses=_COMMAND_ERRORS,
)
async def transfer_call(
    request: Request,
    services: ServicesDep,
    principal: AdminWrite,
    call_sid: CallSid,
    body: TransferRequest,
) -> CommandResult:
    """Only to a named target of the call's flow or a number on
    ``transfer_allowed_numbers``; premium-rate, unlisted international and do-not-call
    numbers are refused (422). ``mode`` ``warm`` rings and briefs the target first."""
    args = {"to": body.to, "target": body.target, "reason": body.reason, "mode": body.mode}
    return await _command(services, principal, call_sid, "transfer", args, request)


@router.post(
    "/calls/{call_sid}/say",
    summary="Make the agent say a sentence now (after its current response)",
    responses=_COMMAND_ERRORS,
)
async def say_on_call(
    request: Request,
    services: ServicesDep,
    principal: AdminWrite,
    call_sid: CallSid,
    body: SayRequest,
) -> CommandResult:
    return await _command(services, principal, call_sid, "say", {"text": body.text}, request)
