"""A whole offline stack on loopback: Switchboard server (uvicorn for HTTP, the media
listener for Media Streams), local engine, carrier simulator with its fake REST API, and
real Redis with this test's key prefix."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI

from app.api.main import create_app
from app.call.media_server import MediaBind
from app.demo import seed_demo
from app.migrate import migrate
from app.services import Services
from app.settings import Settings
from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.redis import create_redis
from switchboard_engine import EngineServer, Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.rest import TwilioRestFake
from tests.conftest import REDIS_URL
from tests.helpers import WAIT_TIMEOUT_S, wait_until

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "e2e-auth-token-not-a-default"


def order_status_call(**overrides: Any) -> CallScript:
    """A call to the demo support line (+15550100000) from +15555550123: the caller asks
    about order 1042, then says goodbye. Its timeline runs at 4x speed
    (``frame_interval_ms=5``); the caps are in call time (ms, s), with room for a loaded
    machine's slower turns. ``overrides``: other ``CallScript`` fields."""
    values: dict[str, Any] = {
        "from_number": "+15555550123",
        "to_number": "+15550100000",
        "caller_audio": [recording_ulaw("order_status"), recording_ulaw("goodbye")],
        "frame_interval_ms": 5,
        "first_wait_ms": 12_000,
        "max_duration_s": 120,
        **overrides,
    }
    return CallScript(**values)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:  # the test process owns signals
        yield


@dataclass
class Stack:
    settings: Settings
    base_url: str
    app: FastAPI
    engine: EngineServer
    sim: CarrierSimulator
    rest: TwilioRestFake
    store: CallStore
    redis: aioredis.Redis

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


StackFactory = Callable[..., Any]


@pytest.fixture
async def make_stack(
    redis_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[StackFactory]:
    """``await make_stack(**settings_overrides)`` → a running ``Stack`` (stopped after).

    The server runs as ``switchboard serve`` does: uvicorn for HTTP and the media listener
    on its own port, where the TwiML's ``<Stream>`` points (``media="asgi"`` points it at
    the HTTP app's ASGI ``/twilio/media`` route instead: the fallback)."""
    stops: list[Callable[[], Any]] = []

    async def factory(
        engine_pace: float = 8.0,
        scenario: Scenario | None = None,
        media: str = "listener",
        redis_url: str | None = None,
        **overrides: Any,
    ) -> Stack:
        """``redis_url``: a Redis of the test's own (the ``redis_server`` fixture's) instead
        of the shared one, for tests that stall or restart it."""
        redis = redis_client
        if redis_url is not None:
            redis = create_redis(redis_url)  # any URL the service takes (Cluster too)
            stops.append(redis.aclose)
        engine = EngineServer(scenario or Scenario.load(), pace=engine_pace)
        await engine.start()
        stops.append(engine.stop)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is
        # TCP, and accepted connections inherit it (else: 40 ms delayed-ACK stalls).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        media_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        media_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        media_sock.bind(("127.0.0.1", 0))
        media_port = media_sock.getsockname()[1]
        sim = CarrierSimulator(base, base, ACCOUNT_SID, AUTH_TOKEN)
        rest = TwilioRestFake(sim, ACCOUNT_SID, AUTH_TOKEN)
        await rest.start()
        stops.append(rest.stop)
        values: dict[str, Any] = {
            "env": "test",
            "public_base_url": base,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_api_base_url": rest.base_url,
            "realtime_url": f"ws://127.0.0.1:{engine.port}/v1/realtime?model=gpt-realtime",
            "realtime_api_key": "test-key",
            "redis_url": redis_url or REDIS_URL,
            "redis_prefix": redis_prefix,
            "call_action_grace_ms": 3000,
            "log_json": False,
            "media_port": media_port,
        }
        if media == "asgi":
            values["media_public_url"] = base.replace("http://", "ws://") + "/twilio/media"
        values.update(overrides)
        settings = Settings(**values)
        keys = Keys(redis_prefix)
        await migrate(redis, keys)
        await seed_demo(redis, keys)  # what `switchboard seed-demo` writes
        app = create_app(settings, MediaBind("127.0.0.1", media_port, sock=media_sock))
        config = uvicorn.Config(app, log_config=None, ws="websockets-sansio", lifespan="on")
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))

        async def stop_server() -> None:
            server.should_exit = True
            await asyncio.wait_for(task, 30)
            sock.close()
            media_sock.close()

        stops.append(stop_server)
        await wait_until(lambda: server.started or task.done(), 60, interval_s=0.01)
        if not server.started:
            task.result()  # the server failed to start: its exception
            raise AssertionError("the server exited before it started")
        store = CallStore(redis, keys, 3600)
        return Stack(settings, base, app, engine, sim, rest, store, redis)

    yield factory
    for stop in reversed(stops):
        await stop()


async def eventually(predicate: Callable[[], bool], timeout_s: float = WAIT_TIMEOUT_S) -> None:
    """Wait until ``predicate()`` holds, checking every 20 ms; fail after ``timeout_s``
    (:func:`tests.helpers.wait_until`)."""
    await wait_until(predicate, timeout_s)


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    result: Stack = await make_stack()
    return result
