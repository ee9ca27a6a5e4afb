"""What every operator page shares: templates and their filters, the security headers,
the session check and the redirect to the login form."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from app.admin.keys import Scope
from app.admin.service import storage_errors
from app.api.auth import SESSION_COOKIE, Principal, api_keys
from app.api.deps import ServicesDep
from app.errors import LoginRequired
from app.services import Services

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")

#: Headers on every page: no framing, no inline script or style, nothing cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The page"},
    303: {"description": "No session: to the login form"},
}


def fmt_ms(ms: int | None) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def clock(ms: int | None) -> str:
    seconds = max(0, ms or 0) / 1000
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def percent(part: int | float, whole: int | float) -> int:
    return 0 if not whole else min(100, int(100 * part / whole))


templates.env.filters["when"] = fmt_ms
templates.env.filters["clock"] = clock
templates.env.globals["percent"] = percent


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


async def session_of(request: Request, services: Services) -> Principal | None:
    """The operator-page session of the request, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with storage_errors():
        session = await api_keys(services).session(token)
    if session is None:
        return None
    return Principal(key=session.key, via="session", csrf=session.csrf)


async def page_principal(request: Request, services: ServicesDep) -> Principal:
    """The logged-in operator of an operator page (a FastAPI dependency). Raises
    ``LoginRequired`` without a valid session: ``login_redirect`` answers it."""
    principal = await session_of(request, services)
    if principal is None:
        raise LoginRequired(request.url.path)
    return principal


#: An operator page's logged-in operator (``page_principal``).
PagePrincipal = Annotated[Principal, Depends(page_principal)]


async def login_redirect(request: Request, exc: Exception) -> RedirectResponse:
    """The app's answer to ``LoginRequired``: 303 to the login page (``to_login``)."""
    return to_login(request)


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/admin/ui/login?" + urlencode({"next": target}), status_code=303)


def safe_next(value: str | None) -> str:
    """Only same-site page paths (no scheme, no ``//host``)."""
    if value and value.startswith("/admin/ui") and "//" not in value and "\\" not in value:
        return value
    return "/admin/ui"


def base(principal: Principal, section: str = "") -> dict[str, Any]:
    """What the layout needs: who is logged in, whether they may write, the CSRF token,
    which section of the navigation is current."""
    return {
        "principal": principal,
        "can_write": principal.key.allows(Scope.write),
        "csrf": principal.csrf or "",
        "section": section,
    }


def parse_time(value: str | None) -> datetime | None:
    """A datetime from a filter form (``YYYY-MM-DDTHH:MM`` or ISO 8601), or None.
    Raises ``ValueError``."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a date and time: {value!r}") from None
