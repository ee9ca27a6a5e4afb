"""The media stream over both carrier links: the media listener `switchboard serve` runs
(picows on its own port, calling the bridge straight from its parser), and the plain ASGI
route of the HTTP app any other server gets, with barge-in and a hang-up on each."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.audio import BYTES_PER_MS, FRAME_MS
from app.call.links import AsgiCarrierLink, MediaStreamLink
from app.engine import Scenario
from app.sim.assets import recording_ulaw
from app.sim.carrier import CallScript
from app.sim.summary import read_call
from tests.e2e.conftest import Stack, eventually

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
    stack: Stack = await make_stack(scenario=scenario, media=media)
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
    (clear,) = result.clears
    (session,) = stack.engine.sessions
    (trunc,) = session.truncations
    played_ms = clear.played_bytes_total / BYTES_PER_MS
    assert abs(trunc["audio_end_ms"] - played_ms) <= 2 * FRAME_MS, (trunc, played_ms)
    assert bridge.frames_in > 100 and bridge.frames_out > 10 and bridge.malformed == 0
    stored = await read_call(stack.store, result.call_sid)
    assert stored["record"]["status"] == "ended"
    assert [t["name"] for t in stored["tool_calls"]] == ["end_call"]
