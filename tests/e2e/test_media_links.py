"""The media stream over both carrier links: the media listener `switchboard serve` runs
(picows on its own port, calling the bridge straight from its parser), and the plain ASGI
route of the HTTP app any other server gets, with barge-in and a hang-up on each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.call.links import AsgiCarrierLink, MediaStreamLink
from app.migrate import migrate
from app.settings import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN
from app.store.keys import Keys
from switchboard_engine import EngineServer, Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.rest import TwilioRestFake
from switchboard_sim.summary import read_call
from tests.conftest import REDIS_URL
from tests.e2e.conftest import Stack, eventually
from tests.e2e.heard import NEVER_STALLS, assert_truncated_to_heard
from tests.helpers import free_ports, wait_until

CALLER = "+15555550123"
SUPPORT = "+15550100000"


@pytest.mark.parametrize("media", ["listener", "asgi"])
async def test_barge_in_and_hangup_over_each_link(make_stack: Any, media: str) -> None:
    scenario = Scenario.model_validate(
        {
            "name": "links",
            "greeting": "Hello, thanks for calling, how can I help you today?",
            "turns": [
                {
                    "transcript": "Wait, I have another question.",
                    "function_call": {"name": "end_call", "arguments": {"reason": "done"}},
                }
            ],
            "after_tool": {"end_call": "Goodbye."},
        }
    )
    stack: Stack = await make_stack(scenario=scenario, media=media, **NEVER_STALLS)
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("interrupt")],
        barge_in_after_ms=1500,
        max_duration_s=30,
    )
    calls: list[Any] = []
    task = stack.sim.place_inbound_call(script)

    async def watch() -> None:
        await eventually(lambda: bool(stack.services.live.calls))
        calls.extend(stack.services.live.calls.values())

    result, _ = await asyncio.gather(task, watch())
    (bridge,) = calls
    link = MediaStreamLink if media == "listener" else AsgiCarrierLink
    assert isinstance(bridge.carrier, link)
    assert result.errors == []
    assert result.ended_by == "hangup"
    (session,) = stack.engine.sessions
    assert_truncated_to_heard(result, session)
    assert bridge.frames_in > 100 and bridge.frames_out > 10 and bridge.malformed == 0
    stored = await read_call(stack.store, result.call_sid)
    assert stored["record"]["status"] == "ended"
    assert [t["name"] for t in stored["tool_calls"]] == ["end_call"]


async def test_sigterm_leaves_a_live_call_to_finish_on_its_media_socket(
    redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    """`switchboard serve` on SIGTERM: the HTTP server stops, but the live call's media
    socket stays open while the call drains (uvicorn's shutdown closes its own WebSockets
    with 1012; the media listener's are not its own), the call ends as its script says,
    and the process exits once the drain is done."""
    scenario = Scenario.model_validate(
        {
            "name": "drain",
            "greeting": "Hello, thanks for calling, how can I help you today?",
            "turns": [
                {
                    "transcript": "Wait, I have another question.",
                    "function_call": {"name": "end_call", "arguments": {"reason": "done"}},
                }
            ],
            "after_tool": {"end_call": "Goodbye."},
        }
    )
    engine = EngineServer(scenario, pace=8.0)
    await engine.start()
    port, media_port = free_ports(2)
    base = f"http://127.0.0.1:{port}"
    sim = CarrierSimulator(base, base, DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN)
    rest = TwilioRestFake(sim, DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN)
    await rest.start()
    await migrate(redis_client, Keys(redis_prefix))
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
        SWITCHBOARD_SHUTDOWN_DRAIN_S="60",
        SWITCHBOARD_CALL_ACTION_GRACE_MS="3000",
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "app.cli", "serve", "--port", str(port), "--media-port", str(media_port)),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                assert server.returncode is None, "server exited at start-up"
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(base + "/readyz")).status_code == 200
                return False

            await wait_until(ready, 120, interval_s=0.05, what="the server ready")
        script = CallScript(
            from_number=CALLER,
            to_number=SUPPORT,
            caller_audio=[recording_ulaw("interrupt")],
            barge_in_after_ms=1500,
            max_duration_s=30,
        )
        call = asyncio.ensure_future(sim.place_inbound_call(script))
        await eventually(lambda: bool(engine.sessions) or call.done())  # the call is bridged
        server.send_signal(signal.SIGTERM)
        result = await call
        assert result.stream_url == f"ws://127.0.0.1:{media_port}/twilio/media"
        assert result.ended_by == "hangup", (result.ended_by, result.errors)
        assert result.ws_close_code != 1012
        (session,) = engine.sessions
        assert session.truncations  # barge-in worked during the drain
        # It exits by itself once drained (uvicorn re-raises the SIGTERM it caught).
        assert await asyncio.wait_for(server.wait(), 30) in (0, -signal.SIGTERM)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        await rest.stop()
        await engine.stop()
