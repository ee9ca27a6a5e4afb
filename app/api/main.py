"""The FastAPI application: ``create_app(settings)``.

Start-up builds the services (Redis, flows, tools) and refuses to start with invalid
flows. Shutdown runs in a fixed order: stop accepting calls, drain live calls within
``shutdown_drain_s``, then close storage.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.routes import health, twilio
from app.deps import Services
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings)
        app.state.services = services
        if settings.is_dev and not settings.validate_signatures:
            log.warning("!!! SIGNATURE VALIDATION IS OFF (dev mode only) !!!")
        log.info(
            "switchboard up: env=%s flows=%s realtime=%s",
            settings.env,
            sorted(services.flows.flows),
            "local engine" if settings.uses_local_engine else settings.realtime_dialect,
        )
        try:
            yield
        finally:
            await services.shutdown()

    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        summary="Telephony voice agent: Twilio Media Streams ↔ OpenAI Realtime",
        lifespan=lifespan,
    )
    app.include_router(twilio.router)
    app.include_router(health.router)
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory app.api.main:app_factory``."""
    return create_app()
