"""``/admin/dnc``: the do-not-call list (list and look: read; add and remove: write)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from app.admin.dnc import DncEntry, DncList
from app.admin.schemas import DncAddRequest, DncEntryModel, DncPage
from app.admin.service import storage_errors
from app.api.auth import (
    ADMIN_ERRORS,
    ADMIN_ERRORS_404,
    AdminRead,
    AdminWrite,
    ValidationErrorBody,
)
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from app.api.pagination import CursorParam, invalid_cursor
from app.services import Services

router = APIRouter(prefix="/admin/dnc", tags=["admin: do-not-call"])

Entry = Annotated[
    str,
    Path(
        min_length=3,
        max_length=64,
        description="An E.164 number (any spelling) or an entry_id (SHA-256 hex)",
    ),
]
_422: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrorBody, "description": "Not a phone number, entry id or cursor"}
}


def _dnc(services: Services) -> DncList:
    return DncList(services.redis, services.keys)


def _model(entry: DncEntry) -> DncEntryModel:
    return DncEntryModel(**entry.as_dict())


@router.get("", summary="Do-not-call entries, newest first", responses={**ADMIN_ERRORS, **_422})
async def list_dnc_entries(
    services: ServicesDep,
    principal: AdminRead,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DncPage:
    dnc = _dnc(services)
    with storage_errors():
        try:
            entries, next_cursor = await dnc.page(limit=limit, cursor=cursor)
        except ValueError as exc:
            raise invalid_cursor(exc) from None
    return DncPage(items=[_model(e) for e in entries], next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Add a number (201; 200 with the existing entry when already listed)",
    responses={**ADMIN_ERRORS, **_422, 200: {"model": DncEntryModel, "description": "Exists"}},
)
async def add_dnc_entry(
    request: Request,
    services: ServicesDep,
    principal: AdminWrite,
    body: DncAddRequest,
    response: Response,
) -> DncEntryModel:
    request.state.audit = {"number": body.number, "reason": body.reason}
    with storage_errors():
        try:
            entry, created = await _dnc(services).add(
                body.number, reason=body.reason, added_by=principal.label
            )
        except ValueError as exc:
            raise ApiError(422, str(exc), code="validation_error") from None
    if not created:
        response.status_code = 200
    return _model(entry)


@router.get("/{entry}", summary="Is this number listed?", responses={**ADMIN_ERRORS_404, **_422})
async def get_dnc_entry(services: ServicesDep, principal: AdminRead, entry: Entry) -> DncEntryModel:
    with storage_errors():
        try:
            found = await _dnc(services).get(entry)
        except ValueError as exc:
            raise ApiError(422, str(exc), code="validation_error") from None
    if found is None:
        raise ApiError(404, "not on the do-not-call list")
    return _model(found)


@router.delete(
    "/{entry}",
    status_code=204,
    summary="Remove a number (or entry id) from the list",
    responses={**ADMIN_ERRORS_404, **_422},
)
async def remove_dnc_entry(services: ServicesDep, principal: AdminWrite, entry: Entry) -> Response:
    with storage_errors():
        try:
            removed = await _dnc(services).remove(entry)
        except ValueError as exc:
            raise ApiError(422, str(exc), code="validation_error") from None
    if not removed:
        raise ApiError(404, "not on the do-not-call list")
    return Response(status_code=204)
