"""Admin authentication: API keys with scopes, for every ``/admin`` endpoint.

A request authenticates with one of

* ``Authorization: Bearer sbk_<id>_<secret>`` or ``X-API-Key: sbk_<id>_<secret>``;
* the operator page's session cookie (``sb_admin``, HttpOnly, SameSite=Strict) made by
  logging in with a key at ``/admin/ui/login``. A cookie-authenticated request with an
  unsafe method (POST, PUT, PATCH, DELETE) must also carry the session's CSRF token in
  ``X-CSRF-Token`` (the page embeds it); header-authenticated requests need none.

Answers: no credentials or a wrong/revoked key → 401 (``WWW-Authenticate: Bearer``); a
key without the scope → 403; a client IP with ``admin.auth_fail_max`` failed attempts in
the current ``admin.auth_fail_window_s`` window → 429 with ``Retry-After`` (even with a
good key, until the window ends). Failures are logged with the reason, client IP and
(for a real key) its public id, never the key itself.

Use the ``Annotated`` aliases in routers::

    @router.get("/admin/things")
    async def things(principal: AdminRead) -> ...: ...

    @router.post("/admin/things")
    async def make(principal: AdminWrite) -> ...: ...

and add ``responses=ADMIN_ERRORS`` (or ``ADMIN_ERRORS_404``) to the route so OpenAPI
documents the error answers.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app import metrics
from app.admin.keys import ApiKey, ApiKeys, FailureLimiter, Scope
from app.api.deps import get_services
from app.api.errors import ApiError, ErrorBody, ValidationErrorBody
from app.errors import StoreError
from app.services import Services

log = logging.getLogger(__name__)

SESSION_COOKIE = "sb_admin"
CSRF_HEADER = "X-CSRF-Token"
API_KEY_HEADER = "X-API-Key"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An admin API key: `sbk_<id>_<secret>`")
_api_key = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="An admin API key (alternative header)"
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="Operator page session (log in at /admin/ui)"
)


__all__ = [
    "ADMIN_ERRORS",
    "ADMIN_ERRORS_404",
    "AdminRead",
    "AdminWrite",
    "ErrorBody",
    "Principal",
    "ValidationErrorBody",
]

#: OpenAPI ``responses`` for admin routes: the auth errors, malformed and invalid input.
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed request (a body that is not JSON)"},
    422: {
        "model": ValidationErrorBody,
        "description": "Invalid parameters or body (validation_error, invalid_cursor)",
    },
    401: {"model": ErrorBody, "description": "Missing, invalid or revoked API key"},
    413: {"model": ErrorBody, "description": "Request body over the limit"},
    403: {
        "model": ErrorBody,
        "description": "The key lacks the scope (scope_missing) or a CSRF token is bad",
    },
    429: {"model": ErrorBody, "description": "Too many failed auth attempts from this client"},
    503: {"model": ErrorBody, "description": "Storage unavailable"},
}
#: ``ADMIN_ERRORS`` plus 404 for routes addressing one resource.
ADMIN_ERRORS_404: dict[int | str, dict[str, Any]] = {
    **ADMIN_ERRORS,
    404: {"model": ErrorBody, "description": "No such resource"},
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key, and whether it came by header or operator-page session."""

    key: ApiKey
    via: Literal["header", "session"]
    csrf: str | None = None

    @property
    def label(self) -> str:
        """``name (key_id)`` for audit logs and ``added_by`` fields."""
        return f"{self.key.name} ({self.key.key_id})"


def failure_limiter(services: Services) -> FailureLimiter:
    """The per-IP failed-auth limiter configured by the admin settings."""
    settings = services.settings
    return FailureLimiter(
        services.redis,
        services.keys,
        max_failures=settings.admin.auth_fail_max,
        window_s=settings.admin.auth_fail_window_s,
    )


def api_keys(services: Services) -> ApiKeys:
    """The key store for this app's Redis and prefix."""
    return ApiKeys(
        services.redis, services.keys, session_ttl_s=services.settings.admin.session_ttl_s
    )


def client_ip(request: Request) -> str:
    """The client address: the TCP peer, or the ``X-Forwarded-For`` client when the peer
    is one of ``Settings.trusted_proxies`` (applied by ``app.api.security``; nobody else's
    forwarding headers are believed)."""
    return request.client.host if request.client else "unknown"


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """Resolve the caller's key (see the module docstring). Raises 401/403/429/503."""
    services = get_services(request)
    limiter = failure_limiter(services)
    ip = client_ip(request)
    keys = api_keys(services)
    raw = header_key or (bearer.credentials if bearer else None)
    try:
        retry_after = await limiter.blocked(ip)
        if retry_after is not None:
            metrics.ADMIN_AUTH_FAILURES.labels("rate_limited").inc()
            raise HTTPException(
                429,
                "too many failed authentication attempts; try later",
                headers={"Retry-After": str(retry_after)},
            )
        if raw:
            key, reason = await keys.verify(raw)
            if key is None:
                count = await limiter.record_failure(ip)
                metrics.ADMIN_AUTH_FAILURES.labels(reason).inc()
                log.warning(
                    "admin auth failed: reason=%s ip=%s key_id=%s path=%s failures=%d",
                    reason,
                    ip,
                    raw.split("_")[1] if reason in ("bad_secret", "revoked") else "-",
                    request.url.path,
                    count,
                )
                raise _unauthorized("invalid API key")
            principal = Principal(key=key, via="header")
            request.state.principal = principal  # for the audit trail (app.api.security)
            return principal
        if cookie:
            session = await keys.session(cookie)
            if session is None:
                metrics.ADMIN_AUTH_FAILURES.labels("session").inc()
                raise _unauthorized("session expired or revoked; log in again")
            if request.method not in _SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not sent or not hmac.compare_digest(sent, session.csrf):
                    metrics.ADMIN_AUTH_FAILURES.labels("csrf").inc()
                    log.warning("admin request with a bad CSRF token from ip=%s", ip)
                    raise ApiError(403, "missing or invalid CSRF token", code="csrf_invalid")
            principal = Principal(key=session.key, via="session", csrf=session.csrf)
            request.state.principal = principal
            return principal
    except StoreError as exc:
        log.error("admin auth: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    metrics.ADMIN_AUTH_FAILURES.labels("missing").inc()
    raise _unauthorized("an admin API key is required")


async def require_read(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Any active key (``read`` or ``write``)."""
    return principal


async def require_write(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """A ``write`` key; a ``read`` key is 403."""
    if not principal.key.allows(Scope.write):
        metrics.ADMIN_AUTH_FAILURES.labels("scope").inc()
        log.warning("admin key %s lacks the write scope", principal.key.key_id)
        raise ApiError(403, "this API key lacks the write scope", code="scope_missing")
    return principal


async def metrics_access(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal | None:
    """``/metrics``: open when ``Settings.metrics_open`` (dev, or ``metrics_public``),
    else it needs a read key like any admin read (401/429/503)."""
    if get_services(request).settings.metrics_open:
        return None
    return await authenticate(request, bearer, header_key, cookie)


#: A route parameter typed ``AdminRead`` requires a key with at least the read scope.
AdminRead = Annotated[Principal, Depends(require_read)]
#: A route parameter typed ``AdminWrite`` requires a key with the write scope.
AdminWrite = Annotated[Principal, Depends(require_write)]
