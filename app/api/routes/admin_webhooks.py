"""``/admin/webhooks``: signed event webhooks (README "Webhooks"). Listing, reading and
the delivery log need a read key; creating, changing, deleting and pinging a write key
(each an audit entry). A subscription's secret is in the create answer (and a rotation's)
only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.admin.schemas import (
    DeliveryOut,
    DeliveryPage,
    PingResult,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPage,
    WebhookUpdate,
)
from app.admin.service import storage_errors
from app.api.auth import ADMIN_ERRORS, ADMIN_ERRORS_404, AdminRead, AdminWrite
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from app.api.pagination import CursorParam, invalid_cursor
from app.events.bus import envelope
from app.services import Services
from app.store.event_keys import EventKeys
from app.webhooks.dispatch import enqueue
from app.webhooks.signing import new_secret
from app.webhooks.subscriptions import Subscription, WebhookStore

router = APIRouter(prefix="/admin/webhooks", tags=["admin: webhooks"])

SubId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{12}$", description="Subscription id")]


def webhook_store(services: Services) -> WebhookStore:
    settings = services.settings
    return WebhookStore(
        services.redis,
        EventKeys(services.keys),
        policy=settings.webhook_policy,
        max_subscriptions=settings.webhook_max_subscriptions,
    )


def webhook_out(sub: Subscription) -> WebhookOut:
    return WebhookOut(
        id=sub.id,
        url=sub.url,
        events=sub.events,
        description=sub.description,
        enabled=sub.enabled,
        secret_hint=sub.secret_hint,
        created_at_ms=sub.created_at_ms,
        updated_at_ms=sub.updated_at_ms,
    )


def _bad(exc: ValueError) -> ApiError:
    return ApiError(422, str(exc), code="validation_error")


@router.get("", summary="Webhook subscriptions, newest first", responses=ADMIN_ERRORS)
async def list_webhooks(
    services: ServicesDep,
    principal: AdminRead,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WebhookPage:
    with storage_errors():
        try:
            subs, next_cursor = await webhook_store(services).page(cursor=cursor, limit=limit)
        except ValueError as exc:
            raise invalid_cursor(exc) from None
    return WebhookPage(items=[webhook_out(s) for s in subs], next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Subscribe a URL to events; the answer holds the signing secret, shown once",
    responses=ADMIN_ERRORS,
)
async def create_webhook(
    request: Request, services: ServicesDep, principal: AdminWrite, body: WebhookCreate
) -> WebhookCreated:
    """The URL must be one the ``webhook_destinations`` policy allows (production:
    public addresses only); ``events`` are checked against the known types (422)."""
    with storage_errors():
        try:
            sub = await webhook_store(services).create(
                body.url, body.events, description=body.description, enabled=body.enabled
            )
        except ValueError as exc:
            raise _bad(exc) from None
    request.state.audit = {"id": sub.id, "url": sub.url, "events": sub.events}
    return WebhookCreated(webhook=webhook_out(sub), secret=sub.secret)


async def _get(services: Services, sub_id: str) -> Subscription:
    with storage_errors():
        sub = await webhook_store(services).get(sub_id)
    if sub is None:
        raise ApiError(404, "no such webhook subscription")
    return sub


@router.get("/{sub_id}", summary="One webhook subscription", responses=ADMIN_ERRORS_404)
async def get_webhook(services: ServicesDep, principal: AdminRead, sub_id: SubId) -> WebhookOut:
    return webhook_out(await _get(services, sub_id))


@router.patch(
    "/{sub_id}",
    summary="Change a subscription (URL, events, description, enabled; rotate its secret)",
    responses=ADMIN_ERRORS_404,
)
async def update_webhook(
    request: Request,
    services: ServicesDep,
    principal: AdminWrite,
    sub_id: SubId,
    body: WebhookUpdate,
) -> WebhookCreated:
    secret = new_secret() if body.rotate_secret else None
    with storage_errors():
        try:
            sub = await webhook_store(services).update(
                sub_id,
                url=body.url,
                events=body.events,
                description=body.description,
                enabled=body.enabled,
                secret=secret,
            )
        except ValueError as exc:
            raise _bad(exc) from None
    if sub is None:
        raise ApiError(404, "no such webhook subscription")
    request.state.audit = body.model_dump(exclude_none=True)
    return WebhookCreated(webhook=webhook_out(sub), secret=secret)


@router.delete(
    "/{sub_id}",
    status_code=204,
    summary="Delete a subscription (its pending deliveries are dropped)",
    responses=ADMIN_ERRORS_404,
)
async def delete_webhook(services: ServicesDep, principal: AdminWrite, sub_id: SubId) -> Response:
    with storage_errors():
        removed = await webhook_store(services).delete(sub_id)
    if not removed:
        raise ApiError(404, "no such webhook subscription")
    return Response(status_code=204)


@router.get(
    "/{sub_id}/deliveries",
    summary="The subscription's delivery log (every attempt), newest first",
    responses=ADMIN_ERRORS_404,
)
async def list_webhook_deliveries(
    services: ServicesDep,
    principal: AdminRead,
    sub_id: SubId,
    cursor: CursorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryPage:
    await _get(services, sub_id)
    with storage_errors():
        try:
            entries, next_cursor = await webhook_store(services).log_page(
                sub_id, cursor=cursor, limit=limit
            )
        except ValueError as exc:
            raise invalid_cursor(exc) from None
    items = [
        DeliveryOut(
            id=e.id,
            at_ms=e.at_ms,
            event_id=e.event_id,
            type=e.type,
            attempt=e.attempt,
            outcome=e.outcome,
            status=e.status,
            error=e.error,
            duration_ms=e.duration_ms,
            next_at_ms=e.next_at_ms,
        )
        for e in entries
    ]
    return DeliveryPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{sub_id}/ping",
    status_code=202,
    summary="Send this subscription a signed webhook.ping event (delivered like any other)",
    responses=ADMIN_ERRORS_404,
)
async def ping_webhook(services: ServicesDep, principal: AdminWrite, sub_id: SubId) -> PingResult:
    sub = await _get(services, sub_id)
    event = envelope("webhook.ping", {"webhook_id": sub.id, "by": principal.key.name})
    with storage_errors():
        await enqueue(services.redis, EventKeys(services.keys), sub, event)
    return PingResult(event_id=event.id)
