"""HTTP request metrics for the API: ``switchboard_http_requests_total`` and
``switchboard_http_request_duration_seconds`` (``app.metrics``).

A pure ASGI middleware (no request body buffering, WebSockets untouched). The route label
is the matched route's path template (``/admin/calls/{call_sid}``), never the raw path,
so label values stay bounded; a request no route matched is ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics


def _route(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class StatusWatch:
    """An ASGI ``send`` that passes messages on and notes the response's status code
    (``status``: 500 until ``http.response.start`` went out, as a crash answers)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self.send(message)


class HttpMetrics:
    """Counts and times every HTTP request of ``app`` (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        watch = StatusWatch(send)
        try:
            await self.app(scope, receive, watch)
        finally:
            method = str(scope.get("method", ""))
            route = _route(scope)
            metrics.HTTP_REQUESTS.labels(method, route, str(watch.status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
