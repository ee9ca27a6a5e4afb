"""HTTP hardening around the app: body limits, security headers, proxies, the audit trail.

Pure ASGI middleware (no per-request tasks, no body buffering), installed by
``install(app, settings)`` in ``create_app``:

- ``BodyLimit``: a request body larger than its route's limit is refused with 413 before
  anything parses it: at once from ``Content-Length``, or as soon as a chunked body
  passes the limit. Limits (``Settings``): ``max_webhook_body_bytes`` for ``/twilio/*``,
  ``dialer.max_import_bytes`` (plus 64 KiB of multipart framing) for contact imports,
  ``max_body_bytes`` for everything else.
- ``SecurityHeaders``: ``X-Content-Type-Options: nosniff`` on every response (text
  exports included), so no browser guesses a type for stored caller text.
- ``ProxyHeadersMiddleware`` (uvicorn's) only for ``trusted_proxies``: their
  ``X-Forwarded-For``/``-Proto`` are believed, nobody else's. ``server_options``
  turns uvicorn's own proxy handling (which trusts loopback by default) off, so this
  setting is the one place that decides.
- ``Audit``: every admin write (``POST``/``PUT``/``PATCH``/``DELETE`` under ``/admin``
  by an authenticated key, whatever its outcome) is appended to the audit stream
  (``app.admin.audit``) after the response: who, what, when, from where, the status.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import start_http_server
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import metrics
from app.admin.audit import AuditLog
from app.api.auth import AdminRead
from app.api.http_metrics import StatusWatch
from app.errors import StoreError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.settings import Settings

log = logging.getLogger(__name__)

#: Multipart framing allowed on top of the contact-import limit (bytes).
MULTIPART_SLACK = 64 * 1024
_IMPORT_PATH = re.compile(r"^/admin/campaigns/[^/]+/contacts/?$")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: POSTs under /admin that change nothing (not audited).
_READ_ONLY_POSTS = frozenset({"/admin/flows/validate"})

#: Audit action names by (method, route path template); others are "METHOD template".
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/admin/calls/{call_sid}/hangup"): "call.hangup",
    ("POST", "/admin/calls/{call_sid}/transfer"): "call.transfer",
    ("POST", "/admin/calls/{call_sid}/say"): "call.say",
    ("POST", "/admin/calls/{call_sid}/analysis"): "call.analyze",
    ("POST", "/admin/flows/reload"): "flows.reload",
    ("POST", "/admin/dnc"): "dnc.add",
    ("DELETE", "/admin/dnc/{entry}"): "dnc.remove",
    ("POST", "/admin/campaigns"): "campaign.create",
    ("POST", "/admin/campaigns/{cid}/contacts"): "campaign.import",
    ("POST", "/admin/campaigns/{cid}/start"): "campaign.start",
    ("POST", "/admin/campaigns/{cid}/pause"): "campaign.pause",
    ("POST", "/admin/campaigns/{cid}/resume"): "campaign.resume",
    ("POST", "/admin/campaigns/{cid}/cancel"): "campaign.cancel",
    ("POST", "/admin/campaigns/{cid}/opt-outs"): "campaign.opt_out",
    ("DELETE", "/admin/campaigns/{cid}"): "campaign.delete",
    ("POST", "/admin/keys"): "key.create",
    ("DELETE", "/admin/keys/{key_id}"): "key.revoke",
    ("POST", "/admin/webhooks"): "webhook.create",
    ("PATCH", "/admin/webhooks/{sub_id}"): "webhook.update",
    ("DELETE", "/admin/webhooks/{sub_id}"): "webhook.delete",
    ("POST", "/admin/webhooks/{sub_id}/ping"): "webhook.ping",
    ("POST", "/admin/ui/login"): "session.login",
    ("POST", "/admin/ui/logout"): "session.logout",
}


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options for ``switchboard serve``: its own proxy-header handling off (it
    trusts loopback by default); ``install`` applies ``trusted_proxies`` instead."""
    return {"proxy_headers": False}


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware of the module docstring to ``app`` (outermost last), the
    authenticated ``/admin/openapi.json`` when the public schema is off, and the
    ``metrics_port`` listener to its lifespan."""
    if not settings.docs_open:

        @app.get("/admin/openapi.json", include_in_schema=False)
        async def openapi(principal: AdminRead) -> dict[str, Any]:
            return app.openapi()

    if settings.is_dev and not settings.validate_ws_signature:
        log.warning("!!! MEDIA WEBSOCKET SIGNATURE VALIDATION IS OFF (dev mode only) !!!")
    _wrap_lifespan(app, settings)
    app.add_middleware(Audit)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))


def body_limit(settings: Settings, method: str, path: str) -> int:
    """The largest body (bytes) a request to ``path`` may carry."""
    if path.startswith("/twilio/"):
        return settings.max_webhook_body_bytes
    if method == "POST" and _IMPORT_PATH.match(path):
        return max(settings.max_body_bytes, settings.dialer.max_import_bytes + MULTIPART_SLACK)
    return settings.max_body_bytes


async def _send_413(send: Send, limit: int) -> None:
    body = orjson.dumps(
        {"detail": f"request body larger than {limit} bytes", "code": "body_too_large"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for bodies over ``body_limit`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.settings, scope["method"], scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await _send_413(send, limit)
                    return
                break
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
            return message

        await self.app(scope, limited, send)


class SecurityHeaders:
    """``X-Content-Type-Options: nosniff`` on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _target(path_params: dict[str, Any]) -> str:
    for name in ("call_sid", "cid", "entry", "key_id", "sub_id"):
        if name in path_params:
            return str(path_params[name])
    return ""


class Audit:
    """Appends each authenticated admin write to the audit stream after its response.

    The route's principal comes from ``request.state.principal`` (set by
    ``app.api.auth.authenticate`` and the page login) and a route may add
    ``request.state.audit`` (a dict: what it did, numbers masked). A failed append is
    logged, never turned into an error for a write that already happened.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in _WRITE_METHODS
            or not path.startswith("/admin")
            or path in _READ_ONLY_POSTS
        ):
            await self.app(scope, receive, send)
            return
        watch = StatusWatch(send)
        try:
            await self.app(scope, receive, watch)
        finally:
            await self._record(scope, watch.status)

    async def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        principal = state.get("principal")
        if principal is None:
            return  # not authenticated: nothing was done (auth failures are logged)
        app = scope.get("app")
        services = getattr(getattr(app, "state", None), "services", None)
        if services is None:
            return
        route = scope.get("route")
        template = str(getattr(route, "path", scope["path"]))
        method = scope["method"]
        client = scope.get("client")
        detail = state.get("audit")
        try:
            await AuditLog(
                services.redis, services.keys, services.settings.audit_retention_days * 86400
            ).record(
                action=ACTIONS.get((method, template), f"{method} {template}"),
                actor=principal.label,
                key_id=principal.key.key_id,
                via=principal.via,
                ip=client[0] if client else "unknown",
                method=method,
                path=scope["path"],
                target=_target(scope.get("path_params") or {}),
                status=status,
                detail=detail if isinstance(detail, dict) else None,
            )
        except StoreError as exc:
            log.error("audit append failed for %s %s: %s", method, scope["path"], exc)


def docs_options(settings: Settings) -> dict[str, Any]:
    """``FastAPI(...)`` arguments: ``/openapi.json`` only when ``Settings.docs_open`` (not
    in production unless ``docs_enabled``); with it off the schema is still served to a
    read key at ``/admin/openapi.json``. FastAPI's own ``/docs`` and ``/redoc`` (which
    load their scripts from a CDN) are always off: ``app.api.docs`` serves both pages
    from files installed with Switchboard."""
    if settings.docs_open:
        return {"docs_url": None, "redoc_url": None}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def _wrap_lifespan(app: FastAPI, settings: Settings) -> None:
    """Run the separate metrics listener (``metrics_port``) for the app's lifetime."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        server = None
        if settings.metrics_port:
            try:
                server, _ = start_http_server(
                    settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry()
                )
                log.info("metrics on http://%s:%d/", settings.metrics_host, settings.metrics_port)
            except OSError as exc:  # another worker has it
                log.warning("metrics port %d not opened: %s", settings.metrics_port, exc)
        try:
            async with inner(a) as state:
                yield state
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            metrics.worker_exit()  # a stopped worker's live gauges stop counting

    app.router.lifespan_context = lifespan
