"""A full inbound call over real sockets: webhook → Media Streams ↔ bridge ↔ engine,
a tool call from `response.done`, a hang-up through the carrier's REST API, Redis records."""

from __future__ import annotations

from typing import Any

import orjson

from app.events.bus import Event, EventKeys
from app.phone import mask
from switchboard_engine import Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack
from tests.helpers import wait_until

CALLER = "+15555550123"
SUPPORT = "+15550100000"


async def test_full_call_with_tool_and_hangup(stack: Stack) -> None:
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("order_status"), recording_ulaw("goodbye")],
        max_duration_s=40,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.errors == []
    assert result.ended_by == "hangup"  # end_call → REST update(status=completed)
    stored = await read_call(stack.store, result.call_sid)
    record = stored["record"]
    assert record["status"] == "ended" and record["flow"] == "support"
    assert record["from_masked"] == mask(CALLER)
    assert int(record["total_tokens"]) > 0

    roles = [e["role"] for e in stored["transcript"]]
    assert "user" in roles and "assistant" in roles
    texts = " ".join(e["text"] for e in stored["transcript"])
    assert "1042" in texts and "shipped" in texts  # the engine spoke the tool's result

    names = [t["name"] for t in stored["tool_calls"]]
    assert names == ["get_order_status", "end_call"]

    # Business systems are told: call.started, call.ended (from the bridge), then the
    # post-call analysis, once each.
    stream = EventKeys(stack.settings.redis_prefix).events

    async def ended_event() -> bool:
        entries = await stack.redis.xrange(stream)
        events = [Event.from_fields(i, f) for i, f in entries]
        mine = [e.type for e in events if e.data.get("call_sid") == result.call_sid]
        return mine == ["call.started", "call.ended", "call.analyzed"]

    await wait_until(ended_event, 10, what="call.started, call.ended, call.analyzed on the bus")
    order = stored["tool_calls"][0]
    assert order["error"] is None
    assert order["result"]["status"] == "shipped" and order["result"]["order_id"] == "1042"

    (routing,) = stored["routing"]
    assert (routing["flow"], routing["reason"]) == ("support", "number_match")

    # Every turn was answered; the agent was heard.
    assert all(v is not None for v in result.turn_latencies_ms)
    assert result.played_bytes_total > 8000
    # The caller heard the whole goodbye: the hang-up waited for its last mark.
    assert result.marks_sent_back and not result.clears
    assert result.played_bytes_total == result.agent_audio_bytes_received
    assert record["end_reason"] == "hangup: caller finished"
    latencies = orjson.loads(record["turn_latencies_ms"])
    assert len(latencies) == 2 and all(100 < v < 5000 for v in latencies)


async def test_call_ends_promptly_after_hangup_even_with_a_long_grace(make_stack: Any) -> None:
    """The call ends on the carrier's `stop` after the hang-up, not at the end of the grace
    period. (The 3.11 `wait_for` race that once broke this needs the carrier in another
    process; `make demo` exercises that layout.)"""
    demo = Scenario.load()
    goodbye_only = demo.model_copy(update={"turns": demo.turns[1:]})
    stack: Stack = await make_stack(call_action_grace_ms=20_000, scenario=goodbye_only)
    script = CallScript(
        from_number=CALLER, to_number=SUPPORT, caller_audio=[recording_ulaw("goodbye")]
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.ended_by == "hangup"
    stored = await read_call(stack.store, result.call_sid, wait_s=3.0)
    assert stored["record"]["status"] == "ended"
