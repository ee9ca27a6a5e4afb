"""Tool behaviour on a live call: a filler line while a slow backend answers (a Redis of the
test's own, frozen, which also shows storage stalls never block the audio), and bad
arguments coming back to the model as a structured error it can speak about."""

from __future__ import annotations

import asyncio
from typing import Any

from switchboard_engine import Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack, eventually
from tests.helpers import RedisServerFactory

CALLER = "+15555550123"
SUPPORT = "+15550100000"
FILLER = "One moment while I check that."  # flows/support.yaml filler line


def _scenario(arguments: dict[str, Any]) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "tools",
            "turns": [
                {
                    "transcript": "What's the status of order 1042?",
                    "function_call": {"name": "get_order_status", "arguments": arguments},
                }
            ],
            "after_tool": {"get_order_status": "Order {order_id} is {status}."},
        }
    )


def _spoken(stack: Stack) -> list[str]:
    (session,) = stack.engine.sessions
    return [
        e["transcript"]
        for e in session.events_sent
        if isinstance(e, dict) and e.get("type") == "response.output_audio_transcript.done"
    ]


def _filler_requested(session: Any) -> bool:
    return any(
        isinstance(e, dict)
        and e.get("type") == "response.create"
        and FILLER in str(e.get("response", {}).get("instructions", ""))
        for e in session.events_received
    )


async def test_slow_tool_gets_a_filler_line_and_audio_keeps_flowing(
    make_stack: Any, redis_server: RedisServerFactory
) -> None:
    redis = await redis_server()  # frozen below: the shared Redis stays untouched
    stack: Stack = await make_stack(scenario=_scenario({"order_id": "1042"}), redis_url=redis.url)
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("order_status")],
        hangup_after_ms=1500,
        max_duration_s=30,
    )
    call = asyncio.create_task(stack.sim.place_inbound_call(script))
    await eventually(lambda: bool(stack.engine.sessions))
    (session,) = stack.engine.sessions
    await eventually(
        lambda: any(
            isinstance(e, dict) and e.get("type") == "input_audio_buffer.speech_started"
            for e in session.events_sent
        )
    )
    # The orders backend (Redis) stalls from the start of the caller's turn until the
    # filler line has been asked for. The engine may answer the moment the turn ends (with
    # the function call), so the stall must already be on then; it ends on the condition,
    # not after a guessed time: the tool waits the flow's 1 s filler delay, however slowly
    # the machine runs the call, and no longer (the server's Redis timeout is 2 s).
    redis.freeze()
    try:
        await eventually(lambda: _filler_requested(session) or call.done())
    finally:
        redis.thaw()
    result = await call
    assert result.errors == []
    spoken = _spoken(stack)
    assert FILLER in spoken
    answer = next(i for i, t in enumerate(spoken) if "1042" in t)
    assert spoken.index(FILLER) < answer
    assert "shipped" in spoken[answer]
    stored = await read_call(stack.store, result.call_sid)
    (tool,) = stored["tool_calls"]
    assert tool["error"] is None and tool["duration_ms"] > 1000
    assert FILLER in [e["text"] for e in stored["transcript"]]


async def test_bad_arguments_come_back_as_a_structured_error(make_stack: Any) -> None:
    stack: Stack = await make_stack(scenario=_scenario({"order_id": "ten forty-two"}))
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("order_status")],
        hangup_after_ms=1500,
        max_duration_s=30,
    )
    result = await stack.sim.place_inbound_call(script)
    stored = await read_call(stack.store, result.call_sid)
    (tool,) = stored["tool_calls"]
    assert tool["error"] == "invalid_arguments"
    assert tool["result"]["ok"] is False
    assert tool["result"]["error"]["code"] == "invalid_arguments"
    (session,) = stack.engine.sessions
    outputs = [
        e["item"]["output"]
        for e in session.events_received
        if isinstance(e, dict)
        and e.get("type") == "conversation.item.create"
        and e["item"].get("type") == "function_call_output"
    ]
    assert len(outputs) == 1 and "invalid_arguments" in outputs[0]
    assert any("sorry" in t.lower() for t in _spoken(stack))  # the model spoke about it
