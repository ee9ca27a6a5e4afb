"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from app import metrics
from app.api.auth import ErrorBody, Principal, metrics_access
from app.api.deps import ServicesDep
from app.realtime.dialect import endpoint

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: bool
    realtime: bool
    live_calls: int


@router.get("/healthz", summary="Process is up")
async def healthz() -> Health:
    return Health(status="ok")


async def _reachable(url: str, timeout_s: float = 1.0) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@router.get(
    "/readyz",
    summary="Redis and the configured Realtime endpoint are reachable",
    responses={503: {"model": Readiness, "description": "A dependency is unreachable"}},
)
async def readyz(services: ServicesDep, response: Response) -> Readiness:
    timeout_s = services.settings.readyz_timeout_ms / 1000
    try:
        async with asyncio.timeout(timeout_s):
            redis_ok = bool(await services.redis.ping())
    except Exception:
        redis_ok = False
    realtime_ok = await _reachable(endpoint(services.settings).url, timeout_s)
    ok = redis_ok and realtime_ok and services.accepting and services.ready
    if not ok:
        response.status_code = 503
    return Readiness(
        status="ok" if ok else "unavailable",
        redis=redis_ok,
        realtime=realtime_ok,
        live_calls=len(services.live.calls),
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (needs a read key in production unless metrics_public)",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        401: {"model": ErrorBody, "description": "A key is required here"},
        429: {"model": ErrorBody, "description": "Too many failed auth attempts"},
        503: {"model": ErrorBody, "description": "Storage unavailable (checking the key)"},
    },
)
async def get_metrics(access: Annotated[Principal | None, Depends(metrics_access)]) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)  # all workers
