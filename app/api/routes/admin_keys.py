"""``/admin/keys/me``: which key is calling (keys are created and revoked with the CLI:
``switchboard keys create|list|revoke``)."""

from __future__ import annotations

from fastapi import APIRouter

from app.admin.schemas import WhoAmI
from app.api.auth import ADMIN_ERRORS, AdminRead

router = APIRouter(prefix="/admin/keys", tags=["admin: keys"])


@router.get("/me", summary="The calling key's id, name and scope", responses=ADMIN_ERRORS)
async def whoami(principal: AdminRead) -> WhoAmI:
    key = principal.key
    return WhoAmI(
        key_id=key.key_id,
        name=key.name,
        scope=key.scope.value,
        via=principal.via,
    )
