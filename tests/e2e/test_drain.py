"""The graceful drain of a real `switchboard serve` process on SIGTERM: /readyz answers 503
at once while calls arriving in the grace period are still served; live calls run to their
own end; calls still live at the drain deadline hear the closing line and are hung up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.migrate import migrate
from app.settings import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN, Settings
from app.store.calls import CallStore
from app.store.keys import Keys
from switchboard_engine import EngineServer, Scenario
from switchboard_sim.calls import CallScript
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.rest import TwilioRestFake
from switchboard_sim.summary import read_call
from tests.conftest import REDIS_URL
from tests.e2e.conftest import eventually
from tests.helpers import free_ports, wait_until

CALLER = "+15555550123"
SUPPORT = "+15550100000"
GRACE_MS = 3000

#: A greeting and nothing else: the call lasts until the caller hangs up.
QUIET = Scenario.model_validate(
    {"name": "quiet", "greeting": "Hello, thanks for calling.", "turns": []}
)


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    base: str
    sim: CarrierSimulator
    engine: EngineServer
    store: CallStore


@pytest.fixture
async def serve(redis_prefix: str, redis_client: aioredis.Redis) -> AsyncIterator[Any]:
    started: list[tuple[asyncio.subprocess.Process, TwilioRestFake, EngineServer]] = []

    async def start(**env_overrides: str) -> Server:
        engine = EngineServer(QUIET, pace=8.0)
        await engine.start()
        port, media_port = free_ports(2)
        base = f"http://127.0.0.1:{port}"
        sim = CarrierSimulator(base, base, DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN)
        rest = TwilioRestFake(sim, DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN)
        await rest.start()
        keys = Keys(redis_prefix)
        await migrate(redis_client, keys)
        env = dict(os.environ)
        env.update(
            SWITCHBOARD_ENV="dev",
            SWITCHBOARD_LOG_JSON="false",
            SWITCHBOARD_PUBLIC_BASE_URL=base,
            SWITCHBOARD_REALTIME_URL=f"ws://127.0.0.1:{engine.port}/v1/realtime?model=gpt-realtime",
            SWITCHBOARD_REALTIME_API_KEY="test-key",
            SWITCHBOARD_TWILIO_API_BASE_URL=rest.base_url,
            SWITCHBOARD_REDIS_URL=REDIS_URL,
            SWITCHBOARD_REDIS_PREFIX=redis_prefix,
            SWITCHBOARD_DIALER_ENABLED="false",
            SWITCHBOARD_DRAIN_GRACE_MS=str(GRACE_MS),
            SWITCHBOARD_CALL_ACTION_GRACE_MS="3000",
            **env_overrides,
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "app.cli", "serve", "--port", str(port), "--media-port", str(media_port)),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        started.append((proc, rest, engine))
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                assert proc.returncode is None, "server exited at start-up"
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(base + "/readyz")).status_code == 200
                return False

            await wait_until(ready, 120, interval_s=0.05, what="the server ready")
        store = CallStore(redis_client, keys, 3600)
        return Server(proc, base, sim, engine, store)

    yield start
    for proc, rest, engine in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await rest.stop()
        await engine.stop()


def _script(hangup_after_ms: int) -> CallScript:
    return CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[],
        hangup_after_ms=hangup_after_ms,
        max_duration_s=60,
    )


async def test_sigterm_drains_live_calls_to_their_own_end(serve: Any) -> None:
    srv: Server = await serve(SWITCHBOARD_SHUTDOWN_DRAIN_S="60")
    # Four live calls, each hanging up on its own a few seconds after the greeting.
    calls = [asyncio.ensure_future(srv.sim.place_inbound_call(_script(6000))) for _ in range(4)]
    await eventually(lambda: len(srv.engine.sessions) == 4, timeout_s=30)
    srv.proc.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient() as http:
        # Not ready at once, while a call arriving in the grace period is still served.

        async def not_ready() -> bool:
            return await _status(http, srv.base + "/readyz") == 503

        await wait_until(not_ready, 5, what="readyz 503")
        late = await srv.sim.place_inbound_call(_script(500))
    assert late.ended_by == "caller_hangup", (late.ended_by, late.errors)
    results = await asyncio.gather(*calls)
    for r in results:
        assert r.ended_by == "caller_hangup", (r.ended_by, r.errors)
        assert r.ws_close_code != 1012
        record = (await read_call(srv.store, r.call_sid))["record"]
        assert record["status"] == "ended" and "shutdown" not in record["end_reason"]
    assert await asyncio.wait_for(srv.proc.wait(), 60) in (0, -signal.SIGTERM)


async def _status(http: httpx.AsyncClient, url: str) -> int:
    try:
        return (await http.get(url)).status_code
    except httpx.HTTPError:
        return 0


async def test_calls_live_at_the_drain_deadline_hear_the_closing_line(serve: Any) -> None:
    srv: Server = await serve(SWITCHBOARD_SHUTDOWN_DRAIN_S="5")
    call = asyncio.ensure_future(srv.sim.place_inbound_call(_script(120_000)))
    await eventually(lambda: len(srv.engine.sessions) == 1, timeout_s=30)
    srv.proc.send_signal(signal.SIGTERM)
    result = await call
    assert result.ended_by == "hangup"
    assert result.said == [Settings.model_fields["shutdown_line"].default]
    record = (await read_call(srv.store, result.call_sid))["record"]
    assert record["end_reason"].startswith("hangup: shutdown")
    assert await asyncio.wait_for(srv.proc.wait(), 60) in (0, -signal.SIGTERM)
