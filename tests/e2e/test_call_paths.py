"""Barge-in, transfer, keypad digits and the beta dialect, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from switchboard_engine import Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack, order_status_call
from tests.e2e.heard import NEVER_STALLS, assert_truncated_to_heard
from tests.protocol import validate

CALLER = "+15555550123"
SUPPORT = "+15550100000"
#: The support flow's greeting, spoken first (flows/support.yaml), about 3 s long.
GREETING = "Thanks for calling Acme. How can I help you today?"


def _scenario(**kw: Any) -> Scenario:
    base = {
        "name": "test",
        "greeting": "Hello.",
        "after_tool": {"transfer_call": "Transferring you now.", "end_call": "Goodbye."},
    }
    base.update(kw)
    return Scenario.model_validate(base)


def _client_events(stack: Stack) -> list[dict[str, Any]]:
    (session,) = stack.engine.sessions
    return [e for e in session.events_received if isinstance(e, dict)]


async def test_barge_in_truncates_to_what_the_caller_heard(make_stack: Any) -> None:
    scenario = _scenario(
        turns=[{"transcript": "Wait, I have another question.", "say": "Sure, go ahead."}],
    )
    stack: Stack = await make_stack(scenario=scenario, **NEVER_STALLS)
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("interrupt")],
        barge_in_after_ms=1500,  # the caller talks over the greeting 1.5 s in
        hangup_after_ms=1500,
        max_duration_s=30,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.errors == []
    (session,) = stack.engine.sessions
    # Between what the caller had heard of the greeting when the engine could first have
    # detected the speech and when the clear arrived (tests/e2e/heard.py).
    trunc = assert_truncated_to_heard(result, session)
    assert 1000 < trunc["audio_end_ms"] < trunc["generated_ms"]

    stored = await read_call(stack.store, result.call_sid)
    greeting = next(e for e in stored["transcript"] if e["role"] == "assistant")
    assert greeting["interrupted"] is True
    assert greeting["text"] and GREETING.startswith(greeting["text"])
    assert len(greeting["text"]) < len(GREETING)
    assert int(stored["record"]["barge_ins"]) == 1
    for event in _client_events(stack):
        validate(event, side="client", beta=False)


async def test_transfer_moves_the_call_after_its_audio(make_stack: Any) -> None:
    scenario = _scenario(
        turns=[
            {
                "transcript": "Can I talk to a person please?",
                "function_call": {"name": "transfer_call", "arguments": {"target": "human"}},
            }
        ]
    )
    stack: Stack = await make_stack(scenario=scenario)
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("agent_please")],
        max_duration_s=30,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.ended_by == "transfer"
    assert result.transferred_to == "+15550109999"  # the flow's "human" target
    assert result.played_bytes_total == result.agent_audio_bytes_received  # line was heard
    stored = await read_call(stack.store, result.call_sid)
    webhook, transfer = stored["routing"]
    assert (webhook["reason"], webhook["target"]) == ("number_match", "flow:support")
    assert (transfer["flow"], transfer["reason"]) == ("support", "caller asked for a transfer")
    assert transfer["target"] == "+155****9999"
    assert "+15550109999" not in str(stored)  # masked in storage
    assert stored["record"]["end_reason"].startswith("transfer")
    (tool,) = stored["tool_calls"]
    assert tool["name"] == "transfer_call" and tool["error"] is None


async def test_keypad_digits_reach_the_model_as_user_text(make_stack: Any) -> None:
    stack: Stack = await make_stack(scenario=_scenario())
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        dtmf=[(1500, "1"), (1700, "0"), (1900, "4"), (2100, "2"), (2300, "#")],
        hangup_after_ms=1000,
        max_duration_s=8,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.dtmf_sent == ["1", "0", "4", "2", "#"]
    texts = [
        c["text"]
        for e in _client_events(stack)
        if e["type"] == "conversation.item.create" and e["item"].get("role") == "user"
        for c in e["item"]["content"]
    ]
    assert texts == ["The caller entered 1042 on the keypad."]
    stored = await read_call(stack.store, result.call_sid)
    assert {"role": "user", "text": "[keypad] 1042"}.items() <= next(
        e for e in stored["transcript"] if e["role"] == "user"
    ).items()


async def test_beta_dialect_full_call(make_stack: Any) -> None:
    stack: Stack = await make_stack(realtime_dialect="openai-beta")
    script = order_status_call()
    result = await stack.sim.place_inbound_call(script)
    assert result.ended_by == "hangup" and result.errors == []
    (session,) = stack.engine.sessions
    assert session.dialect.value == "beta" or "beta" in str(session.dialect)
    stored = await read_call(stack.store, result.call_sid)
    assert [t["name"] for t in stored["tool_calls"]] == ["get_order_status", "end_call"]
    for event in _client_events(stack):
        validate(event, side="client", beta=True)


async def _slow_proxy(target_port: int, delay_s: float) -> asyncio.Server:
    """A TCP proxy on loopback that holds each connection ``delay_s`` before relaying it:
    a Realtime service slow to accept."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay_s)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_keypad_digits_before_the_realtime_leg_is_open_are_not_lost(
    make_stack: Any,
) -> None:
    stack: Stack = await make_stack(scenario=_scenario())
    proxy = await _slow_proxy(stack.engine.port, delay_s=0.5)
    port = proxy.sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
    realtime = stack.settings.realtime.model_copy(update={"url": url})
    stack.services.settings = stack.settings.model_copy(update={"realtime": realtime})
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        dtmf=[(0, "4"), (0, "2"), (0, "#")],  # with `start`, before the Realtime handshake
        hangup_after_ms=1000,
        max_duration_s=8,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.dtmf_sent == ["4", "2", "#"]
    events = _client_events(stack)
    types = [e["type"] for e in events]
    assert types[0] == "session.update"  # configured first, then what was queued
    texts = [
        c["text"]
        for e in events
        if e["type"] == "conversation.item.create" and e["item"].get("role") == "user"
        for c in e["item"]["content"]
    ]
    assert texts == ["The caller entered 42 on the keypad."]
    assert types.count("response.create") >= 2  # the keypad's, and the greeting's after it
    proxy.close()
