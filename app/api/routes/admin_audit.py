"""``/admin/audit``: the audit trail of admin writes, newest first (read scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.admin.audit import AuditLog
from app.admin.cursor import decode_cursor, encode_cursor
from app.admin.schemas import Page
from app.admin.service import storage_errors
from app.api.auth import ADMIN_ERRORS, AdminRead
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from app.api.pagination import CursorParam

router = APIRouter(prefix="/admin/audit", tags=["admin: audit"])


class AuditEntryModel(BaseModel):
    """One admin write. ``actor`` is ``name (key_id)`` or ``cli:user@host``; ``status``
    the HTTP status it got (0: made with the CLI); numbers are masked."""

    id: str = Field(description="Stream entry id (<ms>-<n>)")
    at_ms: int
    actor: str
    key_id: str
    via: str = Field(description="header, session or cli")
    ip: str
    action: str = Field(description='e.g. "call.transfer", "dnc.add", "key.create"')
    method: str
    path: str
    target: str = Field(description="The call SID, campaign id, DNC entry or key id")
    status: int
    detail: dict[str, Any]


class AuditPage(Page[AuditEntryModel]):
    """Admin writes, newest first."""


def _before(cursor: str | None) -> str | None:
    """The stream id a cursor stands for (``<ms>-<n>``). Raises ``ApiError`` 422."""
    if not cursor:
        return None
    try:
        ms, seq = decode_cursor(cursor)
        return f"{ms}-{int(seq)}"
    except ValueError:
        raise ApiError(422, "invalid cursor", code="invalid_cursor") from None


def _cursor(entry_id: str | None) -> str | None:
    if entry_id is None:
        return None
    ms, seq = entry_id.split("-", 1)
    return encode_cursor(int(ms), seq)


@router.get(
    "",
    summary="Admin writes (who, what, when, from where), newest first",
    responses=ADMIN_ERRORS,
)
async def list_audit_entries(
    services: ServicesDep,
    principal: AdminRead,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    log = AuditLog(services.redis, services.keys, services.settings.audit_retention_days * 86400)
    with storage_errors():
        try:
            entries, next_before = await log.page(limit=limit, before=_before(cursor))
        except ValueError as exc:
            raise ApiError(422, str(exc), code="invalid_cursor") from None
    return AuditPage(
        items=[AuditEntryModel(**e.as_dict()) for e in entries], next_cursor=_cursor(next_before)
    )
