"""``/admin/keys``: admin API keys. ``GET /admin/keys/me`` (any key) says which key is
calling; listing, creating and revoking need a write key. A new key's secret is in the
create answer only: Switchboard keeps its SHA-256 and never shows it again. Creating and
revoking are audit entries (``key.create``, ``key.revoke``). The same operations are on
the CLI: ``switchboard keys create|list|revoke``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from app.admin.audit import AuditLog
from app.admin.keys import ApiKey, ApiKeys
from app.admin.schemas import KeyCreate, KeyCreated, KeyOut, KeyPage, WhoAmI
from app.admin.service import storage_errors
from app.api.auth import ADMIN_ERRORS, ADMIN_ERRORS_404, AdminRead, AdminWrite
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from app.api.pagination import CursorParam, zset_page
from app.services import Services

router = APIRouter(prefix="/admin/keys", tags=["admin: keys"])

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's public id")]


class _RecordedByMiddleware(AuditLog):
    """The HTTP audit middleware records these writes (with status, IP, and how the
    caller authenticated), so the key store's own entry is not made twice."""

    async def record(self, **_: Any) -> str:
        return ""


def _keys(services: Services) -> ApiKeys:
    return ApiKeys(
        services.redis,
        services.keys,
        session_ttl_s=services.settings.admin.session_ttl_s,
        audit=_RecordedByMiddleware(services.redis, services.keys),
    )


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        key_id=key.key_id,
        name=key.name,
        scope=key.scope.value,
        active=key.active,
        created_at_ms=key.created_at_ms,
        last_used_ms=key.last_used_ms,
        revoked_at_ms=key.revoked_at_ms,
    )


@router.get("/me", summary="The calling key's id, name and scope", responses=ADMIN_ERRORS)
async def get_current_key(principal: AdminRead) -> WhoAmI:
    key = principal.key
    return WhoAmI(
        key_id=key.key_id,
        name=key.name,
        scope=key.scope.value,
        via=principal.via,
    )


@router.get("", summary="Admin keys, newest first (never their secrets)", responses=ADMIN_ERRORS)
async def list_keys(
    services: ServicesDep,
    principal: AdminWrite,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> KeyPage:
    keys = _keys(services)
    items = []
    with storage_errors():
        rows, next_cursor = await zset_page(
            services.redis, services.keys.admin_keys, cursor=cursor, limit=limit
        )
        for key_id, _ in rows:
            key = await keys.get(key_id)
            if key is not None:
                items.append(key_out(key))
    return KeyPage(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Create a key; the answer holds its secret, shown this once",
    responses=ADMIN_ERRORS,
)
async def create_key(
    request: Request, services: ServicesDep, principal: AdminWrite, body: KeyCreate
) -> KeyCreated:
    with storage_errors():
        try:
            key, secret = await _keys(services).create(body.name, body.scope, actor=principal.label)
        except ValueError as exc:
            raise ApiError(422, str(exc), code="validation_error") from None
    request.state.audit = {"name": key.name, "scope": key.scope.value, "key_id": key.key_id}
    return KeyCreated(key=key_out(key), secret=secret)


@router.delete(
    "/{key_id}",
    summary="Revoke a key (at once, its operator-page sessions too); idempotent",
    responses=ADMIN_ERRORS_404,
)
async def revoke_key(
    request: Request, services: ServicesDep, principal: AdminWrite, key_id: KeyId
) -> KeyOut:
    with storage_errors():
        key = await _keys(services).revoke(key_id, actor=principal.label)
    if key is None:
        raise ApiError(404, "no such key")
    request.state.audit = {"name": key.name, "scope": key.scope.value}
    return key_out(key)
