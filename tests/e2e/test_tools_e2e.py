"""Tool behaviour on a live call: a filler line while a slow backend answers (Redis paused,
which also shows storage stalls never block the audio), and bad arguments coming back to the
model as a structured error it can speak about."""

from __future__ import annotations

import asyncio
from typing import Any

from app.engine import Scenario
from app.sim.assets import recording_ulaw
from app.sim.carrier import CallScript
from app.sim.summary import read_call
from tests.e2e.conftest import Stack, eventually

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


async def test_slow_tool_gets_a_filler_line_and_audio_keeps_flowing(make_stack: Any) -> None:
    stack: Stack = await make_stack(scenario=_scenario({"order_id": "1042"}))
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("order_status")],
        hangup_after_ms=1500,
        max_duration_s=30,
    )
    utterance_ms = len(script.caller_audio[0]) // 8
    call = asyncio.create_task(stack.sim.place_inbound_call(script))
    await eventually(lambda: bool(stack.engine.sessions))
    (session,) = stack.engine.sessions
    await eventually(
        lambda: any(
            isinstance(e, dict) and e.get("type") == "input_audio_buffer.speech_started"
            for e in session.events_sent
        ),
        timeout_s=15,
    )
    # The orders backend (Redis) stalls from the start of the caller's turn until 2 s past
    # its end. The engine may answer the moment the turn ends (with the function call),
    # so the stall must already be on then: the tool waits ~2 s, past the flow's 1 s
    # filler delay, however fast the bridge relays the call.
    await stack.redis.execute_command("CLIENT", "PAUSE", str(utterance_ms + 2000), "ALL")
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
