"""The FastAPI application: ``create_app(settings)``.

Start-up builds the services (Redis, flows, tools) and refuses to start with invalid
flows, then starts the admin machinery (live-call registry, control listener), the
media-plane listener when asked (``media``: ``switchboard serve`` does; see
``app.call.media_server``) and, with ``dialer.enabled``, an in-process campaign dialer.
Shutdown runs in a fixed order, one ``AsyncExitStack`` (``run_services``): stop dialling,
stop accepting calls (and media streams), drain live calls within ``shutdown_drain_s``,
close the media listener, stop the workers and the admin machinery, then close storage.
The HTTP server's own shutdown runs before the lifespan's and never touches the media
sockets, so live calls drain with their audio flowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.admin.reaper import OrphanReaper
from app.admin.service import Admin
from app.api import docs, errors, security
from app.api.background import Background
from app.api.http_metrics import HttpMetrics
from app.api.routes import (
    admin_audit,
    admin_calls,
    admin_campaigns,
    admin_dnc,
    admin_flows,
    admin_keys,
    admin_live,
    admin_webhooks,
    health,
    twilio,
    twilio_dial,
)
from app.call.media_server import MediaBind, MediaServer
from app.drain import GracefulDrain
from app.errors import LoginRequired
from app.services import Services
from app.settings import Settings, get_settings
from app.store.objects import sweep_forever
from app.web import routes as web
from app.web.common import login_redirect

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, media: MediaBind | None = None) -> FastAPI:
    """The app; with ``media`` its lifespan also runs the media-plane listener there
    (without: only the ASGI ``/twilio/media`` route serves streams)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with run_services(app, settings, media):
            yield

    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        summary="Telephony voice agent: Twilio Media Streams ↔ OpenAI Realtime",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        **security.docs_options(settings),
    )
    security.install(app, settings)
    app.add_middleware(HttpMetrics)  # outermost: every request counted, 413s too
    errors.install(app)
    if settings.docs_open:
        docs.install(app)
    # Carrier webhooks and the operator's HTML pages are not part of the public API.
    app.include_router(twilio.router, include_in_schema=False)
    app.include_router(twilio_dial.router, include_in_schema=False)
    app.include_router(health.router)
    for router in (
        admin_calls,
        admin_live,
        admin_flows,
        admin_dnc,
        admin_keys,
        admin_campaigns,
        admin_audit,
        admin_webhooks,
    ):
        app.include_router(router.router)
    app.include_router(web.router, include_in_schema=False)
    app.add_exception_handler(LoginRequired, login_redirect)
    app.mount("/admin/ui/static", web.static, name="admin-ui-static")
    return app


@asynccontextmanager
async def run_services(
    app: FastAPI, settings: Settings, media: MediaBind | None
) -> AsyncIterator[Services]:
    """Build the services, start every moving part, and on exit shut them down in the
    reverse order of start (one ``AsyncExitStack``): stop dialling, stop accepting calls
    and media streams, drain live calls (``Services.drain``), close the media listener,
    the recordings sweeper, the event consumers, the orphan reaper and the admin machinery,
    then close storage. A part that fails to start unwinds the ones started before it.
    Raises ``ConfigError``/``FlowFileError`` (bad flows or tools), ``OSError`` (the media
    port cannot be bound)."""
    async with AsyncExitStack() as stack:
        services = Services.build(settings)
        stack.push_async_callback(services.close)  # storage: last
        app.state.services = services
        app.state.dialer = services.dialer
        admin = Admin.build(services)
        app.state.admin = admin
        await admin.start()
        stack.push_async_callback(admin.stop)
        reaper = OrphanReaper(services, admin.instance)  # closes dead instances' calls
        app.state.reaper = reaper
        reaper.start()
        stack.push_async_callback(reaper.stop)
        background = Background.build(services, admin.instance)
        app.state.background = background
        background.start()
        stack.push_async_callback(background.stop)
        if services.recordings is not None:  # retention deletes recordings with their calls
            sweeper = asyncio.create_task(
                sweep_forever(
                    services.recordings,
                    settings.retention_days * 86400,
                    settings.recording_sweep_interval_s,
                ),
                name="recordings-retention",
            )
            stack.push_async_callback(_cancel, sweeper)
        media_server: MediaServer | None = None
        if media is not None:
            media_server = MediaServer(services)
            await media_server.start(media)
            stack.push_async_callback(media_server.close)
        app.state.media = media_server
        dialer = services.dialer.dialer() if settings.dialer.enabled else None
        stopping: list[asyncio.Task[None]] = []

        def begin_drain() -> None:
            services.ready = False  # /readyz 503 at once; calls still served for the grace
            if dialer is not None:  # no new calls placed from now on
                stopping.append(asyncio.create_task(dialer.stop(), name="dialer-stop"))

        def refuse() -> None:
            services.accepting = False
            if media_server is not None:
                media_server.stop_accepting()

        drain = GracefulDrain(settings.drain_grace_ms, begin_drain, refuse)

        async def drain_calls() -> None:
            # Calls stay listed and controllable while they drain; admin stops after.
            await services.drain(drain.started_at)

        stack.push_async_callback(drain_calls)
        stack.callback(refuse)
        if settings.is_dev and not settings.validate_signatures:
            log.warning("!!! SIGNATURE VALIDATION IS OFF (dev mode only) !!!")
        log.info(
            "switchboard up: env=%s flows=%s realtime=%s",
            settings.env,
            sorted(services.flows.flows),
            "local engine" if settings.uses_local_engine else settings.realtime.dialect,
        )
        if dialer is not None:
            dialer.start()

            async def stop_dialing() -> None:  # no new calls while the live ones drain
                if stopping:
                    await asyncio.gather(*stopping, return_exceptions=True)
                else:
                    await dialer.stop()

            stack.push_async_callback(stop_dialing)
        if media is not None:  # `switchboard serve`: the process's signals are ours
            drain.install()
        stack.callback(drain.uninstall)
        yield services


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def operation_id(route: APIRoute) -> str:
    """OpenAPI ``operationId`` of a route: its function's name (``list_calls``), so
    generated clients get methods named like the operations."""
    return route.name


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory app.api.main:app_factory``: with the media
    listener on ``media.host``:``media.port`` (SO_REUSEPORT, so ``--workers`` share it)."""
    settings = get_settings()
    bind = MediaBind(settings.media.host or settings.host, settings.media.port, reuse_port=True)
    return create_app(settings, bind)
