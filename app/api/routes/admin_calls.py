"""``/admin/calls``: find calls and read everything stored about one (read scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from app.admin import calls as admin_calls
from app.admin.calls import CallFilters, call_detail, to_ms, transcript_text
from app.admin.live import live_sids
from app.admin.schemas import (
    CallDetail,
    CallDirection,
    CallPage,
    SearchHit,
    SearchPage,
    TranscriptSnippet,
)
from app.admin.service import storage_errors
from app.analysis.model import CallAnalysis
from app.analysis.service import AnalysisService
from app.api.auth import (
    ADMIN_ERRORS,
    ADMIN_ERRORS_404,
    AdminRead,
    AdminWrite,
    ErrorBody,
    ValidationErrorBody,
)
from app.api.background import search_index
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from app.api.pagination import CursorParam, invalid_cursor
from app.api.ranges import object_response
from app.search.index import SearchIndex, snippets
from app.services import Services
from app.store.event_keys import EventKeys

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


def analysis_service(request: Request, services: Services) -> AnalysisService:
    """The app's analysis service (built by its lifespan), or one for this request."""
    background = getattr(request.app.state, "background", None)
    service = getattr(background, "analysis", None)
    if isinstance(service, AnalysisService):
        return service
    return AnalysisService(
        services.settings, services.redis, services.store, lambda: services.flows
    )


@router.get(
    "/search",
    summary="Find calls by what was said (every word must occur), newest first",
    responses={
        **ADMIN_ERRORS,
        422: {"model": ValidationErrorBody, "description": "No searchable word, or bad cursor"},
    },
)
async def search_calls(
    request: Request,
    services: ServicesDep,
    principal: AdminRead,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words said on the call")],
    since: Annotated[datetime | None, Query(description="Created at or after")] = None,
    until: Annotated[datetime | None, Query(description="Created at or before")] = None,
    flow: Annotated[str | None, _FILTER] = None,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> SearchPage:
    """Answered from an index written when each call ends (``app.search``), not by
    reading transcripts: fast with millions of stored calls. Stop words are left out;
    plurals and ``-ed``/``-ing`` forms match each other."""
    background = getattr(request.app.state, "background", None)
    index = getattr(background, "search", None)
    if not isinstance(index, SearchIndex):
        index = search_index(services)
    with storage_errors():
        try:
            page = await index.search(
                q,
                since_ms=to_ms(since),
                until_ms=to_ms(until),
                flow=flow,
                cursor=cursor,
                limit=limit,
            )
        except ValueError as exc:
            raise invalid_cursor(exc) from None
        sids = [sid for sid, _ in page.hits]
        live = await live_sids(services.redis, services.keys, sids)
        items = []
        for sid in sids:
            record = await services.store.get_call(sid)
            if record is None:
                continue  # expired since it was indexed
            lines = await services.store.transcript(sid)
            items.append(
                SearchHit(
                    call=admin_calls.summary(record, sid in live),
                    snippets=[TranscriptSnippet(**s) for s in snippets(lines, q)],
                )
            )
    return SearchPage(items=items, next_cursor=page.next_cursor)


async def _detail(services: ServicesDep, call_sid: str) -> CallDetail:
    with storage_errors():
        detail = await call_detail(services, call_sid)
        if detail is not None:
            raw = await services.redis.get(EventKeys(services.keys).analysis(call_sid))
            if raw:
                detail.analysis = CallAnalysis.model_validate_json(raw)
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


@router.get(
    "/{call_sid}/recording",
    summary="One call's recording: stereo WAV (left caller, right agent), byte ranges",
    response_class=Response,
    responses={
        **ADMIN_ERRORS_404,
        200: {"content": {"audio/wav": {}}, "description": "The whole recording"},
        206: {"content": {"audio/wav": {}}, "description": "The requested byte range"},
        416: {"model": ErrorBody, "description": "Range past the end"},
    },
)
async def get_call_recording(
    request: Request, services: ServicesDep, principal: AdminRead, call_sid: CallSid
) -> Response:
    record = await services.store.get_call(call_sid)
    key = (record or {}).get("recording")
    if not key or services.recordings is None:
        raise ApiError(404, "no recording of this call")
    return await object_response(
        services.recordings, str(key), request.headers.get("range"), "audio/wav"
    )


@router.get(
    "/{call_sid}/analysis",
    summary="One call's post-call analysis: summary, structured fields, success",
    responses=ADMIN_ERRORS_404,
)
async def get_call_analysis(
    request: Request, services: ServicesDep, principal: AdminRead, call_sid: CallSid
) -> CallAnalysis:
    """404 until the analysis is made (a few seconds after the call ends), and for calls
    whose flow has no ``analysis:`` section."""
    with storage_errors():
        found = await analysis_service(request, services).get(call_sid)
    if found is None:
        raise ApiError(404, "no analysis of this call (yet)")
    return found


@router.post(
    "/{call_sid}/analysis",
    summary="Analyse a finished call again now (e.g. after changing its flow's analysis)",
    responses={
        **ADMIN_ERRORS_404,
        409: {"model": ErrorBody, "description": "Nothing to analyse (not_analysable)"},
    },
)
async def analyze_call(
    request: Request, services: ServicesDep, principal: AdminWrite, call_sid: CallSid
) -> CallAnalysis:
    """Runs within ``analysis_timeout_ms``; the result (``ok`` or ``failed``) replaces
    the stored one and is sent as ``call.analyzed``."""
    with storage_errors():
        if await services.store.get_call(call_sid) is None:
            raise ApiError(404, "no such call")
        result = await analysis_service(request, services).run(call_sid, again=True)
    if result is None:
        raise ApiError(
            409,
            "nothing to analyse: the call's flow has no analysis section, or nothing was said",
            code="not_analysable",
        )
    return result
