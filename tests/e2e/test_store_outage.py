"""Storage outages lose nothing: Redis killed mid-call and started again, through the
real stack (webhook, media stream, bridge, engine; a ``redis-server`` of the test's own).

The kill comes as the caller starts the order question, so the user's transcript line,
the tool row (the order lookup fails: its Redis is gone too), the usage of two
responses and the agent's reply are all written while Redis is away; Redis comes back
(empty without persistence, from its AOF with it) once the engine has answered, and
the caller says goodbye. Every transcript line, tool row and token of usage the engine
produced is stored exactly once, and the record is whole (hash, ``calls:by_time``, the
listing indexes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from app import metrics
from app.store.calls import CallStore
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack, StackFactory, eventually
from tests.helpers import RedisServerFactory, wait_until

CALLER = "+15555550123"
SUPPORT = "+15550100000"


def _sent(session: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in session.events_sent if isinstance(e, dict) and e.get("type") == kind]


def _count(counter: Any) -> float:
    return float(counter._value.get())


@pytest.mark.parametrize(
    "redis_args",
    [(), ("--appendonly", "yes", "--appendfsync", "everysec")],
    ids=["no-persistence", "aof-everysec"],
)
async def test_redis_restarted_mid_call_loses_nothing(
    make_stack: StackFactory, redis_server: RedisServerFactory, redis_args: tuple[str, ...]
) -> None:
    redis = await redis_server(*redis_args)
    stack: Stack = await make_stack(redis_url=redis.url)
    retries, restored = _count(metrics.STORE_RETRIES), _count(metrics.STORE_RESTORED)
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("order_status"), recording_ulaw("goodbye")],
        max_duration_s=60,
    )
    call = asyncio.create_task(stack.sim.place_inbound_call(script))
    await eventually(lambda: bool(stack.engine.sessions))
    (session,) = stack.engine.sessions
    await eventually(lambda: bool(_sent(session, "input_audio_buffer.speech_started")))
    await redis.kill()  # SIGKILL: what the AOF holds survives, nothing else

    # The engine answers the question (a function call, then the reply to its failed
    # output) while Redis is away; the bridge's writes of it have been tried and failed.
    await eventually(lambda: len(_sent(session, "response.done")) >= 3 or call.done())
    await wait_until(lambda: _count(metrics.STORE_RETRIES) > retries, what="writes retried")
    await redis.start()  # same port
    result = await asyncio.wait_for(call, 90)
    assert result.ended_by == "hangup", (result.ended_by, result.errors)

    # A client of our own: the stack's pooled connections died with the first server.
    reader = aioredis.from_url(redis.url, decode_responses=True)
    store = CallStore(reader, stack.store.keys, stack.store.retention_s)
    stored = await read_call(store, result.call_sid, wait_s=30)
    record = stored["record"]
    assert record["status"] == "ended", record
    assert record["end_reason"] == "hangup: caller finished"
    assert (record["flow"], record["direction"]) == ("support", "inbound")
    assert record["from_hash"] and record["created_at_ms"]

    heard = [
        e["transcript"]
        for e in _sent(session, "conversation.item.input_audio_transcription.completed")
    ]
    transcript = stored["transcript"]
    assert [t["text"] for t in transcript if t["role"] == "user"] == heard
    said = _sent(session, "response.output_audio_transcript.done")
    assistant = [t for t in transcript if t["role"] == "assistant"]
    assert len({t["item_id"] for t in assistant}) == len(assistant) == len(said)

    calls = [
        item["call_id"]
        for done in _sent(session, "response.done")
        for item in done["response"].get("output", [])
        if item.get("type") == "function_call"
    ]
    assert [t["call_id"] for t in stored["tool_calls"]] == calls
    assert [t["name"] for t in stored["tool_calls"]] == ["get_order_status", "end_call"]
    assert stored["tool_calls"][0]["error"]  # the lookup failed: its Redis was away

    usage = [d["response"]["usage"] for d in _sent(session, "response.done")]
    assert record["responses"] == len(usage)
    assert record["total_tokens"] == sum(u["total_tokens"] for u in usage)
    assert record["output_tokens"] == sum(u["output_tokens"] for u in usage)

    assert [(r["flow"], r["reason"]) for r in stored["routing"]] == [("support", "number_match")]
    for filters in ({"status": "ended"}, {"number": CALLER}, {"flow": "support"}):
        found, _ = await store.query_calls(filters=filters)
        assert [c["call_sid"] for c in found] == [result.call_sid], filters
    assert await store.recent_calls() == [result.call_sid]
    await reader.aclose()
    if not redis_args:
        assert _count(metrics.STORE_RESTORED) > restored  # Redis came back empty
