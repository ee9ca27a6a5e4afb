"""``/admin/audit``: the audit trail of admin writes, newest first (read scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from app.admin.audit import AuditLog
from app.admin.service import storage_errors
from app.api.auth import ADMIN_ERRORS, AdminRead
from app.api.deps import ServicesDep

router = APIRouter(prefix="/admin/audit", tags=["admin: audit"])


class AuditEntryModel(BaseModel):
    """One admin write. ``actor`` is ``name (key_id)`` or ``cli:user@host``; ``status``
    the HTTP status it got (0: made with the CLI); numbers are masked."""

    id: str = Field(description="Stream entry id (<ms>-<n>); pass as `before` to page")
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


class AuditPage(BaseModel):
    entries: list[AuditEntryModel]
    next_before: str | None = Field(description="Pass as `before` for older entries")


@router.get(
    "",
    summary="Admin writes (who, what, when, from where), newest first",
    responses=ADMIN_ERRORS,
)
async def list_audit(
    services: ServicesDep,
    principal: AdminRead,
    before: Annotated[str | None, Query(max_length=48, pattern=r"^[0-9]+-[0-9]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    log = AuditLog(services.redis, services.keys, services.settings.audit_retention_days * 86400)
    with storage_errors():
        try:
            entries, next_before = await log.page(limit=limit, before=before)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return AuditPage(
        entries=[AuditEntryModel(**e.as_dict()) for e in entries], next_before=next_before
    )
