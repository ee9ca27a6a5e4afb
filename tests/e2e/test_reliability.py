"""Calls survive faults of the Realtime leg, through the real stack: the engine restarted
mid-call (reconnect and replay, the call goes on), gone for good, frozen (SIGSTOP) or
refusing ``session.update`` (the flow's fallback within ``dead_air_max_ms``: the caller
hears the apology, never silence)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.admin.calls import call_detail
from flows import FLOWS_DIR, FlowCatalog
from switchboard_engine import EngineServer, Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack, StackFactory, eventually
from tests.helpers import free_port, wait_until

CALLER = "+15555550123"
SUPPORT = "+15550100000"
BROKEN = "+15550100099"
DEAD_AIR_MS = 4000
#: What a loaded machine may add to a timer before the carrier has the apology (ms).
SLACK_MS = 1500


async def _live_call(stack: Stack, script: CallScript) -> tuple[asyncio.Task[Any], Any]:
    task = asyncio.create_task(stack.sim.place_inbound_call(script))
    await eventually(lambda: bool(stack.services.live.calls))
    (bridge,) = stack.services.live.calls.values()
    await eventually(lambda: bridge.rt is not None and bridge.session.configured)
    return task, bridge


def _fallback_line() -> str:
    return FlowCatalog.load().default.fallback.line


async def test_engine_restarted_mid_call_the_call_goes_on_with_its_context(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(dead_air_max_ms=8000, realtime_reconnect_s=6.0)
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("order_status"), recording_ulaw("goodbye")],
        gap_ms=1500,
        max_duration_s=60,
    )
    task, bridge = await _live_call(stack, script)
    session = bridge.session
    # After the order lookup's answer has played, the engine dies.
    await eventually(
        lambda: (
            any(e.kind == "function_call_output" for e in session.conversation.entries)
            and session.responses.idle
            and session.unplayed_ms() == 0
        ),
        timeout_s=40,
    )
    port = stack.engine.port
    await stack.engine.stop()
    await wait_until(lambda: session.counters.realtime_lost == 1, 10)
    await asyncio.sleep(0.3)  # down for a moment
    engine = EngineServer(Scenario.load(), pace=8.0, port=port)
    await engine.start()
    listening = asyncio.get_running_loop().time()
    try:
        result = await task
    finally:
        await engine.stop()
    assert result.ended_by == "hangup"  # the goodbye turn was answered: end_call
    assert session.reconnects == 1
    reconnect_ms = session.reconnect_ms[0]
    assert reconnect_ms - 300 < 1000 + SLACK_MS, (reconnect_ms, listening)
    # The new session got the conversation so far before the caller's next turn.
    (replayed,) = engine.sessions
    assert "function_call_output" in [i.type for i in replayed.items]
    stored = await read_call(stack.store, result.call_sid)
    assert [t["name"] for t in stored["tool_calls"]] == ["get_order_status", "end_call"]
    roles = [t["role"] for t in stored["transcript"]]
    assert roles[0] == "assistant" and roles.count("user") == 2  # both caller turns kept
    assert stored["record"]["realtime_reconnects"] == "1"
    # The reconnect is an event of the call, with its reconnect_ms, in the API's call detail.
    detail = await call_detail(stack.services, result.call_sid)
    assert detail is not None
    back = [e for e in detail.events if e.kind == "realtime_reconnected"]
    assert len(back) == 1 and int(back[0].fields["reconnect_ms"]) == reconnect_ms


async def test_engine_gone_for_good_falls_back_within_dead_air_max(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(dead_air_max_ms=DEAD_AIR_MS, realtime_reconnect_s=2.0)
    script = CallScript(from_number=CALLER, to_number=SUPPORT, caller_audio=[], max_duration_s=30)
    task, bridge = await _live_call(stack, script)
    await eventually(lambda: any(i.audio_done for i in bridge.session.items.values()))
    await eventually(lambda: bridge.session.unplayed_ms() == 0, timeout_s=20)
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    await stack.engine.stop()
    result = await task
    assert result.ended_by == "hangup"
    assert result.said == [_fallback_line()]
    assert result.said_at_ms is not None
    heard_until = max(s.end_ms for s in result.played_spans)
    assert result.said_at_ms - heard_until < DEAD_AIR_MS + SLACK_MS
    stored = await read_call(stack.store, result.call_sid)
    assert stored["record"]["end_reason"].startswith("fallback")
    assert loop.time() - stopped_at < (DEAD_AIR_MS + SLACK_MS) / 1000 + 5


@pytest.fixture
def broken_flows(tmp_path: Path) -> Path:
    """The bundled flows plus one whose ``session.update`` the engine refuses
    (``max_output_tokens`` over 4096)."""
    for path in FLOWS_DIR.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "broken.yaml").write_text(
        "name: broken\n"
        f'numbers: ["{BROKEN}"]\n'
        "instructions: You are a test.\n"
        'greeting: "Hello."\n'
        "max_output_tokens: 5000\n"
        "fallback:\n"
        '  line: "Sorry, this line is out of order. Goodbye."\n'
    )
    return tmp_path


async def test_session_update_refused_falls_back_at_once(
    make_stack: StackFactory, broken_flows: Path
) -> None:
    stack = await make_stack(flows_dir=broken_flows, dead_air_max_ms=DEAD_AIR_MS)
    script = CallScript(from_number=CALLER, to_number=BROKEN, caller_audio=[], max_duration_s=30)
    result = await stack.sim.place_inbound_call(script)
    assert result.ended_by == "hangup"
    assert result.said == ["Sorry, this line is out of order. Goodbye."]
    assert result.said_at_ms is not None and result.said_at_ms < DEAD_AIR_MS + SLACK_MS
    stored = await read_call(stack.store, result.call_sid)
    assert "session.update refused" in stored["record"]["end_reason"]


@pytest.fixture
async def engine_process(tmp_path: Path) -> AsyncIterator[tuple[subprocess.Popen[bytes], int]]:
    """``switchboard engine --scripted`` as its own process (to freeze it with SIGSTOP)."""
    port = free_port()
    log = (tmp_path / "engine.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on below
        [
            str(Path(sys.executable).with_name("switchboard")),
            "engine",
            "--scripted",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SWITCHBOARD_ENV": "dev"},
    )

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        await wait_until(listening, 60, what=f"engine listening (log: {tmp_path / 'engine.log'})")
        yield proc, port
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            # Waited for on the loop, never with a blocking proc.wait(): the engine closes
            # its sockets with a close handshake that this loop's clients must answer (a
            # blocked loop made every exit take the 10 s close timeout).
            try:
                await wait_until(lambda: proc.poll() is not None, 10, what="engine exited")
            except AssertionError:  # a stopped-then-woken engine may linger
                proc.kill()
                proc.wait(10)
        log.close()


async def test_frozen_engine_never_leaves_the_caller_in_silence(
    make_stack: StackFactory, engine_process: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = engine_process
    stack = await make_stack(
        realtime_url=f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
        dead_air_max_ms=DEAD_AIR_MS,
        realtime_liveness_ms=1500,
        realtime_ping_interval_ms=250,
        realtime_connect_timeout_ms=1000,
    )
    script = CallScript(from_number=CALLER, to_number=SUPPORT, caller_audio=[], max_duration_s=30)
    task, bridge = await _live_call(stack, script)
    await eventually(lambda: any(i.audio_done for i in bridge.session.items.values()), 20)
    await eventually(lambda: bridge.session.unplayed_ms() == 0, timeout_s=20)
    os.kill(proc.pid, signal.SIGSTOP)  # the engine freezes: sockets open, nothing answers
    result = await task
    assert result.ended_by == "hangup"
    assert result.said == [_fallback_line()]
    assert result.said_at_ms is not None
    heard_until = max(s.end_ms for s in result.played_spans)
    assert result.said_at_ms - heard_until < DEAD_AIR_MS + SLACK_MS


async def test_a_carrier_that_stops_playing_ends_its_call_and_no_other(
    make_stack: StackFactory,
) -> None:
    from tests.security.carrier import answered, open_stream

    stack = await make_stack(carrier_stall_ms=2000)
    # A well-behaved call beside it (the simulator echoes every mark after playback).
    good = asyncio.ensure_future(
        stack.sim.place_inbound_call(
            CallScript(from_number=CALLER, to_number=SUPPORT, hangup_after_ms=6000)
        )
    )
    # A carrier that takes the stream and then never plays or echoes anything.
    sid, url, params = await answered(stack)
    ws = await open_stream(stack, url, sid, params)
    try:
        await eventually(lambda: sid in stack.services.live.calls, timeout_s=20)
        await eventually(lambda: sid not in stack.services.live.calls, timeout_s=30)
    finally:
        await ws.close()
    stored = await read_call(stack.store, sid)
    assert stored["record"]["end_reason"].startswith("carrier stalled")
    result = await good
    assert result.ended_by == "caller_hangup", (result.ended_by, result.errors)
    record = (await read_call(stack.store, result.call_sid))["record"]
    assert "stalled" not in record["end_reason"]
