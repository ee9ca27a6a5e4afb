"""``/admin/campaigns``: outbound campaigns (create, import contacts, start, pause, resume,
cancel, live stats, per-contact history). Reads need a read key, changes a write key
(``app.api.auth``).

Contacts are imported as CSV (``text/csv``), JSON (``application/json``) or a multipart
upload (field ``file``; ``format`` query parameter or the file name's extension says
which). The answer lists bad rows by row number; good rows are imported.

Errors: 404 unknown campaign/contact, 409 not allowed in the campaign's state (e.g.
starting without a loaded flow or without contacts), 400 unreadable contact file or
malformed opt-out number, 413 file too large, 422 invalid body, 503 storage or dialer
unavailable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from app.admin.cursor import encode_cursor
from app.admin.schemas import Page
from app.api.auth import ADMIN_ERRORS, ADMIN_ERRORS_404, AdminRead, AdminWrite, ErrorBody
from app.api.errors import ApiError
from app.api.pagination import CursorParam, parse_cursor, zset_page
from app.dialer.models import CampaignSpec
from app.dialer.runtime import DialerRuntime, runtime_of
from app.dialer.service import Campaigns
from app.dialer.store import StoredCampaign
from app.errors import CampaignNotFound, CampaignStateError, ContactFileError, StoreError

router = APIRouter(prefix="/admin/campaigns", tags=["admin: campaigns"])

CampaignId = Annotated[str, Path(pattern=r"^cmp_[0-9a-f]{12}$", description="Campaign id")]
ContactId = Annotated[str, Path(pattern=r"^[0-9]{1,9}$", description="Contact id (1, 2, …)")]
_409: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Not allowed in the campaign's current state"}
}


class CampaignOut(BaseModel):
    """A campaign: its spec, status and bookkeeping (times: Unix ms)."""

    id: str
    status: str
    contacts: int
    created_at_ms: int
    started_at_ms: int | None
    ended_at_ms: int | None
    spec: dict[str, Any]


class StatsOut(BaseModel):
    """Live counters. ``pending`` + ``in_progress`` + ``done`` = ``contacts``;
    ``outcomes``: contacts done per outcome; ``attempt_outcomes``: attempts per outcome;
    ``attempts``: calls dialled."""

    id: str
    name: str
    status: str
    contacts: int
    pending: int
    in_progress: int
    done: int
    attempts: int
    outcomes: dict[str, int]
    attempt_outcomes: dict[str, int]
    recovered_leases: int
    lost_dials: int
    next_due_at_ms: int | None


class CampaignDetail(CampaignOut):
    stats: StatsOut


class RowErrorOut(BaseModel):
    row: int = Field(description="CSV: line number (header = 1); JSON: 1-based position")
    field: str | None
    message: str


class ImportOut(BaseModel):
    imported: int
    rejected: int
    errors: list[RowErrorOut]


class ContactOut(BaseModel):
    """A contact; the number only masked."""

    id: str | None
    phone_masked: str | None
    timezone: str | None
    state: str | None
    outcome: str | None
    reason: str | None
    variables: dict[str, str]
    attempt_outcomes: dict[str, int]
    attempts: int | None
    due_at_ms: int | None
    done_at_ms: int | None
    row: int | None
    created_at_ms: int | None


class AttemptOut(BaseModel):
    """One call attempt (times: Unix ms)."""

    id: str | None
    number: int | None
    state: str | None
    outcome: str | None
    decision: str | None
    call_sid: str | None
    carrier_status: str | None
    answered_by: str | None
    result: str | None
    result_detail: str | None
    error: str | None
    owner: str | None
    due_at_ms: int | None
    leased_at_ms: int | None
    dialed_at_ms: int | None
    placed_at_ms: int | None
    ringing_at_ms: int | None
    answered_at_ms: int | None
    amd_at_ms: int | None
    voicemail_at_ms: int | None
    ended_at_ms: int | None
    retry_at_ms: int | None


class CampaignPage(Page[CampaignOut]):
    """Campaigns, newest first."""


class ContactPage(Page[ContactOut]):
    """A campaign's contacts in import order (ids 1, 2, …)."""


class HistoryOut(BaseModel):
    contact: ContactOut
    attempts: list[AttemptOut]


class OptOutIn(BaseModel):
    number: str = Field(min_length=3, max_length=32, description="E.164 number")


def _runtime(request: Request) -> DialerRuntime:
    runtime = runtime_of(request.app.state)
    if runtime is None:
        raise ApiError(503, "the dialer is not available in this process")
    return runtime


def _campaigns(request: Request) -> Campaigns:
    return _runtime(request).campaigns


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CampaignNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except CampaignStateError as exc:
        raise ApiError(409, str(exc)) from None
    except ContactFileError as exc:
        raise ApiError(400, str(exc)) from None
    except StoreError as exc:
        raise ApiError(503, f"storage unavailable: {exc}") from None


def _out(c: StoredCampaign) -> CampaignOut:
    return CampaignOut(**c.as_dict())


@router.post(
    "", status_code=201, summary="Create a campaign (draft)", responses=ADMIN_ERRORS | _409
)
async def create_campaign(
    request: Request, principal: AdminWrite, spec: CampaignSpec
) -> CampaignOut:
    with _errors():
        return _out(await _campaigns(request).create(spec))


@router.get("", summary="Campaigns, newest first", responses=ADMIN_ERRORS)
async def list_campaigns(
    request: Request,
    principal: AdminRead,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CampaignPage:
    runtime = _runtime(request)
    items = []
    with _errors():
        rows, next_cursor = await zset_page(
            runtime.redis, runtime.keys.campaigns, cursor=cursor, limit=limit
        )
        for cid, _ in rows:
            with contextlib.suppress(CampaignNotFound):  # deleted meanwhile
                items.append(_out(await runtime.campaigns.get(cid)))
    return CampaignPage(items=items, next_cursor=next_cursor)


@router.get("/{cid}", summary="One campaign with live stats", responses=ADMIN_ERRORS_404)
async def get_campaign(request: Request, principal: AdminRead, cid: CampaignId) -> CampaignDetail:
    campaigns = _campaigns(request)
    with _errors():
        c = await campaigns.get(cid)
        stats = await campaigns.stats(cid)
    return CampaignDetail(**c.as_dict(), stats=StatsOut(**stats))


@router.get("/{cid}/stats", summary="Live stats", responses=ADMIN_ERRORS_404)
async def get_campaign_stats(request: Request, principal: AdminRead, cid: CampaignId) -> StatsOut:
    with _errors():
        return StatsOut(**await _campaigns(request).stats(cid))


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"contact file larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"contact file larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/{cid}/contacts",
    summary="Import contacts (CSV or JSON); bad rows are reported by row number",
    responses=ADMIN_ERRORS_404
    | _409
    | {
        400: {"model": ErrorBody, "description": "Unreadable file"},
        413: {"model": ErrorBody, "description": "File too large"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
            "required": True,
        }
    },
)
async def import_contacts(
    request: Request,
    principal: AdminWrite,
    cid: CampaignId,
    format: Annotated[Literal["csv", "json"] | None, Query()] = None,
) -> ImportOut:
    runtime = _runtime(request)
    campaigns, limit = runtime.campaigns, runtime.settings.dialer.max_import_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = format
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=5, max_part_size=limit)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "multipart upload needs a 'file' field")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, f"contact file larger than {limit} bytes")
        name = (upload.filename or "").lower()
        fmt = fmt or ("json" if name.endswith(".json") else "csv")
    else:
        data = await _read_limited(request, limit)
        fmt = fmt or ("json" if content_type.endswith("json") else "csv")
    with _errors():
        report = await campaigns.import_contacts(cid, data, fmt)
    return ImportOut(**report.as_dict())


@router.get("/{cid}/contacts", summary="Contacts in import order", responses=ADMIN_ERRORS_404)
async def list_contacts(
    request: Request,
    principal: AdminRead,
    cid: CampaignId,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ContactPage:
    position = parse_cursor(cursor)
    after = position[0] if position else 0
    campaigns = _campaigns(request)
    with _errors():
        rows = await campaigns.contacts(cid, after, limit)
        total = await campaigns.store.contact_count(cid)
    last = after + limit
    next_cursor = encode_cursor(last, str(last)) if last < total else None
    return ContactPage(items=[ContactOut(**r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{cid}/contacts/{n}", summary="One contact and its attempts", responses=ADMIN_ERRORS_404
)
async def get_contact_history(
    request: Request, principal: AdminRead, cid: CampaignId, n: ContactId
) -> HistoryOut:
    with _errors():
        history = await _campaigns(request).contact_history(cid, n)
    return HistoryOut(
        contact=ContactOut(**history["contact"]),
        attempts=[AttemptOut(**a) for a in history["attempts"]],
    )


async def _transition(request: Request, cid: str, action: str) -> CampaignOut:
    campaigns = _campaigns(request)
    with _errors():
        change = {
            "start": campaigns.start,
            "pause": campaigns.pause,
            "resume": campaigns.resume,
            "cancel": campaigns.cancel,
        }[action]
        return _out(await change(cid))


@router.post(
    "/{cid}/start", summary="Start dialling (draft → running)", responses=ADMIN_ERRORS_404 | _409
)
async def start_campaign(request: Request, principal: AdminWrite, cid: CampaignId) -> CampaignOut:
    return await _transition(request, cid, "start")


@router.post("/{cid}/pause", summary="Pause (no new dials)", responses=ADMIN_ERRORS_404 | _409)
async def pause_campaign(request: Request, principal: AdminWrite, cid: CampaignId) -> CampaignOut:
    return await _transition(request, cid, "pause")


@router.post("/{cid}/resume", summary="Resume a paused campaign", responses=ADMIN_ERRORS_404 | _409)
async def resume_campaign(request: Request, principal: AdminWrite, cid: CampaignId) -> CampaignOut:
    return await _transition(request, cid, "resume")


@router.post(
    "/{cid}/cancel",
    summary="Cancel: waiting contacts end campaign_cancelled, live calls finish",
    responses=ADMIN_ERRORS_404 | _409,
)
async def cancel_campaign(request: Request, principal: AdminWrite, cid: CampaignId) -> CampaignOut:
    return await _transition(request, cid, "cancel")


@router.post(
    "/{cid}/opt-outs",
    status_code=204,
    summary="Opt a number out of this campaign (checked before every dial)",
    responses=ADMIN_ERRORS_404 | {400: {"model": ErrorBody, "description": "Not a number"}},
)
async def add_opt_out(
    request: Request, principal: AdminWrite, cid: CampaignId, body: OptOutIn
) -> Response:
    with _errors():
        try:
            await _campaigns(request).opt_out_number(cid, body.number)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    return Response(status_code=204)


@router.delete(
    "/{cid}",
    status_code=204,
    summary="Delete a finished or draft campaign with its contacts",
    responses=ADMIN_ERRORS_404 | _409,
)
async def delete_campaign(request: Request, principal: AdminWrite, cid: CampaignId) -> Response:
    with _errors():
        await _campaigns(request).delete(cid)
    return Response(status_code=204)
