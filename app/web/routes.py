"""``/admin/ui``: the operator's page (see the package docstring).

Every page but the login form needs a session; without one the browser is sent to
``/admin/ui/login`` (303). The session cookie (``sb_admin``) is HttpOnly,
SameSite=Strict, ``Secure`` when ``public_base_url`` is https, scoped to ``/admin``, and
lives ``admin.session_ttl_s``. Logging in counts failures like API requests do (429
after ``admin.auth_fail_max`` in a window).
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from app import metrics
from app.admin.calls import CallFilters, call_detail, list_calls, to_ms
from app.admin.live import live_calls
from app.admin.service import storage_errors
from app.analysis.model import CallAnalysis
from app.api.auth import (
    SESSION_COOKIE,
    ErrorBody,
    Principal,
    api_keys,
    client_ip,
    failure_limiter,
)
from app.api.deps import ServicesDep
from app.api.routes.admin_calls import CALL_SID_PATTERN
from app.errors import StoreError
from app.store.event_keys import EventKeys
from app.web import pages
from app.web.common import (
    HERE,
    PAGE,
    PagePrincipal,
    base,
    parse_time,
    render,
    safe_next,
    session_of,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin/ui", tags=["operator page"])
static = StaticFiles(directory=HERE / "static")


@router.get("/login", summary="Login form", response_class=HTMLResponse, responses=PAGE)
async def login_form(
    request: Request,
    services: ServicesDep,
    next: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    if await session_of(request, services) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post(
    "/login",
    summary="Log in with an admin API key (sets the session cookie)",
    response_class=HTMLResponse,
    responses={
        303: {"description": "Logged in: to the page asked for"},
        401: {"content": {"text/html": {}}, "description": "Wrong key"},
        429: {"content": {"text/html": {}}, "description": "Too many failures"},
    },
)
async def login(
    request: Request,
    services: ServicesDep,
    key: Annotated[str, Form(max_length=200)],
    next: Annotated[str | None, Form(max_length=500)] = None,
) -> Response:
    settings = services.settings
    limiter = failure_limiter(services)
    ip = client_ip(request)
    keys = api_keys(services)
    target = safe_next(next)
    with storage_errors():
        retry_after = await limiter.blocked(ip)
        if retry_after is not None:
            metrics.ADMIN_AUTH_FAILURES.labels("rate_limited").inc()
            context = {"next": target, "error": "Too many failed attempts. Try again later."}
            response = render(request, "login.html", context, status_code=429)
            response.headers["Retry-After"] = str(retry_after)
            return response
        found, reason = await keys.verify(key)
        if found is None:
            count = await limiter.record_failure(ip)
            metrics.ADMIN_AUTH_FAILURES.labels(reason).inc()
            log.warning(
                "operator page login failed: reason=%s ip=%s failures=%d", reason, ip, count
            )
            context = {"next": target, "error": "That key is not valid."}
            return render(request, "login.html", context, status_code=401)
        token, _ = await keys.open_session(found)
    request.state.principal = Principal(key=found, via="session")  # for the audit trail
    log.info("operator page login: key %s (%s) from %s", found.key_id, found.name, ip)
    redirect = RedirectResponse(target, status_code=303)
    redirect.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.admin.session_ttl_s,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=settings.public_base_url.startswith("https://"),
    )
    return redirect


@router.post(
    "/logout",
    summary="Log out (ends the session)",
    responses={303: {"description": "To the login form"}, 403: {"model": ErrorBody}},
)
async def logout(
    request: Request,
    services: ServicesDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    principal = await session_of(request, services)
    if principal is not None:
        request.state.principal = principal  # for the audit trail
        if csrf != principal.csrf:
            raise HTTPException(403, "missing or invalid CSRF token")
        with storage_errors():
            await api_keys(services).close_session(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/admin/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


@router.get(
    "",
    summary="Live calls (updating by themselves) and the call list with filters",
    response_class=HTMLResponse,
    responses=PAGE,
)
async def dashboard(
    request: Request,
    services: ServicesDep,
    principal: PagePrincipal,
    direction: Annotated[str | None, Query(max_length=16)] = None,
    flow: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=128)] = None,
    number: Annotated[str | None, Query(max_length=32)] = None,
    campaign: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    form = {
        "direction": direction or "",
        "flow": flow or "",
        "status": status or "",
        "number": number or "",
        "campaign": campaign or "",
        "since": since or "",
        "until": until or "",
    }
    error = None
    page = None
    live: list[Any] = []
    try:
        filters = CallFilters(
            since_ms=to_ms(parse_time(since)),
            until_ms=to_ms(parse_time(until)),
            direction=direction if direction in ("inbound", "outbound") else None,
            flow=flow or None,
            status=status or None,
            number=number or None,
            campaign=campaign or None,
        )
        page = await list_calls(services, filters, cursor=cursor, limit=50)
        live = await live_calls(services.redis, services.keys)
    except ValueError as exc:
        error = str(exc)
    except StoreError as exc:
        log.error("operator page: storage unavailable: %s", exc)
        error = "Storage is unavailable right now."
    older = None
    if page is not None and page.next_cursor:
        older = "?" + urlencode(
            {**{k: v for k, v in form.items() if v}, "cursor": page.next_cursor}
        )
    api_query = urlencode({k: v for k, v in form.items() if v})
    context = {
        **base(principal, "calls"),
        "form": form,
        "page": page,
        "live": live,
        "error": error,
        "older": older,
        "flows": sorted(services.flows.flows),
        # The first page refreshes itself from the JSON API with the same filters.
        "refresh_query": None if cursor else api_query,
    }
    return render(
        request, "index.html", context, status_code=422 if error and page is None else 200
    )


@router.get(
    "/calls/{call_sid}",
    summary="One call: transcript, tool calls, routing, and controls while it is live",
    response_class=HTMLResponse,
    responses={**PAGE, 404: {"content": {"text/html": {}}, "description": "No such call"}},
)
async def call_page(
    request: Request, services: ServicesDep, principal: PagePrincipal, call_sid: str
) -> Response:
    """The transcript (each agent turn with its latency; clickable to its moment in the
    recording when the call has one), the analysis, tool calls, routing, usage and
    cost; its state line and transcript follow a live call."""
    detail = None
    if re.match(CALL_SID_PATTERN, call_sid):
        with storage_errors():
            detail = await call_detail(services, call_sid)
    if detail is None:
        context = {**base(principal), "call_sid": call_sid}
        return render(request, "not_found.html", context, status_code=404)
    with storage_errors():
        raw = await services.redis.get(EventKeys(services.keys).analysis(call_sid))
    if raw:
        detail.analysis = CallAnalysis.model_validate_json(raw)
    flow = services.flows.get(detail.call.flow)
    # A recording in the recordings store is served by GET /admin/calls/{sid}/recording
    # (this host, so the CSP allows it); one kept only by Twilio is not played here.
    has_recording = bool(detail.record.get("recording"))
    recording_url = f"/admin/calls/{call_sid}/recording" if has_recording else None
    context = {
        **base(principal, "calls"),
        "d": detail,
        "targets": sorted(flow.transfer_targets) if flow else [],
        "transfer_mode": flow.transfer.mode if flow else "cold",
        "turns": pages.turns_with_latency(detail),
        "recording_url": recording_url,
    }
    return render(request, "call.html", context)


router.include_router(pages.router)
