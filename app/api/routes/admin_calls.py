"""``/admin/calls``: find calls and read everything stored about one (read scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import PlainTextResponse

from app.admin import calls as admin_calls
from app.admin.calls import CallFilters, call_detail, to_ms, transcript_text
from app.admin.schemas import CallDetail, CallDirection, CallPage
from app.admin.service import storage_errors
from app.api.auth import ADMIN_ERRORS, ADMIN_ERRORS_404, AdminRead, ValidationErrorBody
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from app.api.pagination import CursorParam, invalid_cursor

router = APIRouter(prefix="/admin/calls", tags=["admin: calls"])

#: Call SIDs as Twilio makes them (``CA`` + 32 hex) and anything test-shaped.
CALL_SID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CallSid = Annotated[str, Path(pattern=CALL_SID_PATTERN, description="Twilio CallSid")]
_FILTER = Query(min_length=1, max_length=128)


@router.get(
    "",
    summary="List calls, newest first, with filters and cursor pagination",
    responses={
        **ADMIN_ERRORS,
        422: {"model": ValidationErrorBody, "description": "Bad filter, number or cursor"},
    },
)
async def list_calls(
    services: ServicesDep,
    principal: AdminRead,
    since: Annotated[
        datetime | None, Query(description="Created at or after (ISO 8601 or epoch)")
    ] = None,
    until: Annotated[datetime | None, Query(description="Created at or before")] = None,
    direction: Annotated[CallDirection | None, Query()] = None,
    flow: Annotated[str | None, _FILTER] = None,
    status: Annotated[str | None, _FILTER] = None,
    number: Annotated[
        str | None,
        Query(
            min_length=3,
            max_length=32,
            description="Caller or called number, any spelling (matched on its E.164 hash)",
        ),
    ] = None,
    campaign: Annotated[str | None, _FILTER] = None,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CallPage:
    """Filters combine with AND. Each page examines at most ``calls_scan_budget`` indexed
    candidates, so it stays fast with millions of stored calls."""
    filters = CallFilters(
        since_ms=to_ms(since),
        until_ms=to_ms(until),
        direction=direction.value if direction else None,
        flow=flow,
        status=status,
        number=number,
        campaign=campaign,
    )
    with storage_errors():
        try:
            return await admin_calls.list_calls(services, filters, cursor=cursor, limit=limit)
        except ValueError as exc:
            raise invalid_cursor(exc) from None


async def _detail(services: ServicesDep, call_sid: str) -> CallDetail:
    with storage_errors():
        detail = await call_detail(services, call_sid)
    if detail is None:
        raise ApiError(404, "no such call")
    return detail


@router.get(
    "/{call_sid}",
    summary="One call: record, transcript, routing, tools, usage, cost",
    responses=ADMIN_ERRORS_404,
)
async def get_call(services: ServicesDep, principal: AdminRead, call_sid: CallSid) -> CallDetail:
    return await _detail(services, call_sid)


@router.get(
    "/{call_sid}/export",
    summary="Download one call as JSON (the same document as GET /admin/calls/{call_sid})",
    responses={
        **ADMIN_ERRORS_404,
        200: {"content": {"application/json": {}}, "description": "Attachment {call_sid}.json"},
    },
)
async def export_call(services: ServicesDep, principal: AdminRead, call_sid: CallSid) -> Response:
    detail = await _detail(services, call_sid)
    return Response(
        detail.model_dump_json(indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{call_sid}.json"'},
    )


@router.get(
    "/{call_sid}/transcript.txt",
    summary="One call's transcript as plain text",
    response_class=Response,
    responses={
        **ADMIN_ERRORS_404,
        200: {"content": {"text/plain": {}}, "description": "[mm:ss.s] Caller|Agent: text"},
    },
)
async def get_call_transcript_text(
    services: ServicesDep, principal: AdminRead, call_sid: CallSid
) -> Response:
    detail = await _detail(services, call_sid)
    return PlainTextResponse(
        transcript_text(detail),
        headers={"Content-Disposition": f'inline; filename="{call_sid}.txt"'},
    )
