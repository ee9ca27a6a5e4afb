"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served entirely from this host.

The scripts and styles come from the ``fastapi-offline`` package (Swagger UI and ReDoc
distribution builds, installed with Switchboard) under ``/docs/assets/``, so the pages
work on an air-gapped host; FastAPI's own pages, which load them from a CDN, are off
(``app.api.security.docs_options``). The pages carry no inline script: Swagger UI starts
from ``/docs/init/swagger-init.js``. Both exist only when ``Settings.docs_open``.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

#: The Swagger UI and ReDoc builds shipped by ``fastapi-offline``.
VENDOR_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
INIT_DIR = Path(__file__).resolve().parent / "docs_assets"

#: ReDoc renders with inline styles and a blob: worker; nothing loads from elsewhere.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API (Swagger UI)</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head><body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init/swagger-init.js"></script>
</body></html>
"""

_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API (ReDoc)</title>
<link rel="icon" href="/docs/assets/favicon.png">
</head><body>
<redoc spec-url="{openapi}"></redoc>
<script src="/docs/assets/redoc.standalone.js"></script>
</body></html>
"""


def _page(template: str, app: FastAPI) -> HTMLResponse:
    body = template.format(
        title=html.escape(app.title), openapi=html.escape(app.openapi_url or "/openapi.json")
    )
    return HTMLResponse(body, headers={"Content-Security-Policy": DOCS_CSP})


def install(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (call only when docs are open)."""
    app.mount("/docs/assets", StaticFiles(directory=VENDOR_DIR), name="docs-assets")
    app.mount("/docs/init", StaticFiles(directory=INIT_DIR), name="docs-init")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(_SWAGGER, app)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(_REDOC, app)
