"""A live call's writes through its CallRecorder and StoreWriter while Redis fails.

Real ``redis-server`` processes of the tests' own (``redis_server``): killed and started
again without persistence (Redis comes back empty) and with AOF (``everysec``), frozen
so that a write is applied but its reply never arrives, and keys deleted by hand. Every
transcript line, tool row, event and token of usage must be stored exactly once, and the
record must be whole: its hash, ``calls:by_time`` and the listing indexes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from app.phone import mask
from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.recorder import CallRecorder
from app.store.redis import create_redis
from app.store.writer import StoreWriter
from tests.helpers import RedisServer, RedisServerFactory, wait_until

CALLER = "+15555550123"
CALLED = "+15550100000"
SID = "CA" + "1" * 32
CREATED_MS = time.time_ns() // 1_000_000 - 60_000  # within the index retention
USAGE = {
    "total_tokens": 300,
    "input_tokens": 200,
    "output_tokens": 100,
    "input_token_details": {"audio_tokens": 150, "cached_tokens": 64},
    "output_token_details": {"audio_tokens": 80},
}


async def _webhook(store: CallStore, sid: str = SID) -> None:
    """What the voice webhook writes before the call is bridged."""
    await store.create_call(
        call_sid=sid,
        direction="inbound",
        from_number=CALLER,
        to_number=CALLED,
        flow="support",
        status="ringing",
        created_at_ms=CREATED_MS,
        extra={"campaign": "spring"},
    )
    await store.append_routing(
        sid, flow="support", reason="number_match", target="flow:support", at_ms=CREATED_MS
    )


@dataclass
class Call:
    """A bridged call's writer, and what it was asked to write."""

    writer: StoreWriter
    runner: asyncio.Task[None]
    lines: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    responses: int = 0
    counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def rec(self) -> CallRecorder:
        assert self.writer.recorder is not None
        return self.writer.recorder

    def turn(self) -> None:
        """One turn's writes: a user line, a tool row, an assistant line, usage, an event."""
        n = next(self.counter)
        self.say("user", f"caller line {n}")
        self.tools.append(f"fc{n}")
        self.writer.submit(
            self.rec.append_tool_call(
                name="get_order_status",
                call_id=f"fc{n}",
                arguments='{"order_id": "1042"}',
                result={"ok": True, "n": n},
                error=None,
                duration_ms=3.5,
                at_ms=CREATED_MS + n,
            )
        )
        self.say("assistant", f"agent line {n}")
        self.responses += 1
        self.writer.submit(self.rec.add_usage(USAGE))
        self.events.append(f"ev{n}")
        self.writer.submit(
            self.rec.append_event(kind="realtime_reconnected", fields={"n": f"ev{n}"}, at_ms=n)
        )

    def say(self, role: str, text: str) -> None:
        self.lines.append(text)
        self.writer.submit(
            self.rec.append_transcript(
                role=role,
                text=text,
                item_id=f"item-{text}",
                offset_ms=len(self.lines),
                interrupted=False,
            )
        )


def _bridge(store: CallStore, *, journal_max: int = 5000, sid: str = SID) -> Call:
    recorder = CallRecorder(store, sid, journal_max=journal_max)
    writer = StoreWriter(
        sid, retry_delay_s=0.01, retry_max_delay_s=0.1, outage_s=120, recorder=recorder
    )
    call = Call(writer, asyncio.create_task(writer.run()))
    writer.submit(recorder.update_call(status="in-progress", stream_sid="MZ" + "2" * 32))
    return call


async def _settled(call: Call) -> None:
    await wait_until(lambda: call.writer.pending == 0 and not call.writer._in_flight)


async def _end(call: Call) -> None:
    call.writer.submit(call.rec.update_call(status="ended", ended_at_ms=CREATED_MS + 60_000))
    await call.writer.close(timeout_s=60)
    await call.runner


async def _assert_whole(store: CallStore, call: Call, *, status: str = "ended") -> None:
    """Everything asked for is stored exactly once, in order, and the record is whole."""
    transcript = await store.transcript(SID)
    assert [t["text"] for t in transcript] == call.lines
    assert [t["call_id"] for t in await store.tool_calls(SID)] == call.tools
    assert [e["n"] for e in await store.events(SID)] == call.events
    routing = await store.routing(SID)
    assert [(r["reason"], r["target"]) for r in routing] == [("number_match", "flow:support")]
    record = await store.get_call(SID)
    assert record is not None
    assert record["responses"] == call.responses
    assert record["total_tokens"] == 300 * call.responses
    assert record["input_tokens"] == 200 * call.responses
    assert record["cached_tokens"] == 64 * call.responses
    assert record["output_audio_tokens"] == 80 * call.responses
    assert (record["direction"], record["flow"], record["campaign"]) == (
        "inbound",
        "support",
        "spring",
    )
    assert (record["from_masked"], record["to_masked"]) == (mask(CALLER), mask(CALLED))
    assert record["created_at_ms"] == CREATED_MS and record["status"] == status
    assert record["stream_sid"] == "MZ" + "2" * 32
    assert await store.recent_calls() == [SID]
    for filters in (
        {"status": status},
        {"flow": "support"},
        {"direction": "inbound"},
        {"campaign": "spring"},
        {"number": CALLER},
        {"number": CALLED},
    ):
        found, _ = await store.query_calls(filters=filters)
        assert [c["call_sid"] for c in found] == [SID], filters
    other = "in-progress" if status == "ended" else "ringing"
    assert (await store.query_calls(filters={"status": other}))[0] == []
    for key in store.keys.call_keys(SID):
        if key != store.keys.status(SID):
            assert 0 < await store.redis.ttl(key) <= store.retention_s, key


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    return Keys(redis_prefix)


@pytest.fixture
async def own_redis(
    redis_server: RedisServerFactory, redis_prefix: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[RedisServer, CallStore]]:
    server = await redis_server(*getattr(request, "param", ()))
    client = create_redis(server.url, socket_timeout_s=0.5, connect_timeout_s=0.5)
    yield server, CallStore(client, Keys(redis_prefix), 3600)
    await client.aclose()


@pytest.mark.parametrize(
    ("own_redis", "persistent"),
    [((), False), (("--appendonly", "yes", "--appendfsync", "everysec"), True)],
    indirect=["own_redis"],
    ids=["no-persistence", "aof-everysec"],
)
async def test_redis_killed_and_back_loses_nothing(
    own_redis: tuple[RedisServer, CallStore], persistent: bool
) -> None:
    server, store = own_redis
    await _webhook(store)
    call = _bridge(store)
    call.turn()
    call.turn()
    await _settled(call)
    assert call.rec.restores == 0

    await server.kill()  # SIGKILL: no shutdown, nothing flushed but what the AOF holds
    call.turn()  # written while Redis is away: the head op retries, the rest wait
    call.turn()
    await wait_until(lambda: call.writer.retried >= 3, what="writes failing")
    assert call.writer.written == 1 + 1 + 2 * 5  # load, status, two turns
    await server.start()  # same port; without persistence it is empty
    call.turn()
    await _end(call)

    assert (call.writer.failed, call.writer.dropped) == (0, 0)
    if persistent:
        assert call.rec.restores == 0  # the AOF had every acknowledged write
    else:
        assert call.rec.restores >= 1  # the record, its indexes and streams written again
    await _assert_whole(store, call)


async def test_a_write_applied_but_unanswered_is_not_written_twice(
    own_redis: tuple[RedisServer, CallStore],
) -> None:
    """Redis stalls (SIGSTOP) with the write sent: the client times out and retries over
    and over; when Redis runs again it applies every copy it received. The entry is
    there once and the usage counted once."""
    server, store = own_redis
    await _webhook(store)
    call = _bridge(store)
    call.turn()
    await _settled(call)
    server.freeze()
    try:
        call.say("user", "said while Redis stalls")
        await wait_until(lambda: call.writer.retried >= 2, what="the line retried")
        call.responses += 1
        call.writer.submit(call.rec.add_usage(USAGE))
    finally:
        server.thaw()
    await _end(call)
    assert call.rec.duplicates >= 1  # a retry found its entry already written
    await _assert_whole(store, call)


async def test_keys_lost_by_hand_are_written_again(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    """No failure seen by the writer at all: each write checks the record and its stream
    are still there (a Redis restored from an older snapshot, or keys deleted)."""
    store = CallStore(redis_client, keys, 3600)
    await _webhook(store)
    call = _bridge(store)
    call.turn()
    await _settled(call)
    await redis_client.delete(keys.transcript(SID))
    call.turn()
    await _settled(call)
    assert [t["text"] for t in await store.transcript(SID)] == call.lines
    await redis_client.delete(keys.call(SID), keys.tools(SID), keys.routing(SID))
    await redis_client.zrem(keys.calls_by_time_of(SID), SID)
    call.turn()
    await _end(call)
    assert call.rec.restores == 2 and call.writer.retried == 0
    await _assert_whole(store, call)


async def test_the_journal_is_bounded_and_what_it_dropped_is_counted(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    store = CallStore(redis_client, keys, 3600)
    await _webhook(store)
    call = _bridge(store, journal_max=3)
    for n in range(6):
        call.say("user", f"line {n}")
    await _settled(call)
    assert len(call.rec.journal) == 3
    await redis_client.delete(*keys.call_keys(SID))
    call.say("user", "after the loss")
    await _end(call)
    # The journal holds the last three entries, the new line with them: the webhook's
    # routing entry and the first four lines were no longer there.
    assert call.rec.unrestorable == 5
    texts = [t["text"] for t in await store.transcript(SID)]
    assert texts == ["line 4", "line 5", "after the loss"]
    record = await store.get_call(SID)
    assert record is not None and record["flow"] == "support" and record["status"] == "ended"


async def test_entries_go_above_what_the_streams_held(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    """IDs are taken above every entry the streams held when the call was bridged (a
    Redis whose clock runs ahead), and an entry another writer put above ours later is
    never taken for ours."""
    store = CallStore(redis_client, keys, 3600)
    await _webhook(store)
    ahead = f"{int(1e13)}-0"  # the year 2286
    await redis_client.xadd(keys.transcript(SID), {"role": "user", "text": "early"}, id=ahead)
    call = _bridge(store)
    call.say("user", "first")
    await _settled(call)
    await redis_client.xadd(keys.tools(SID), {"name": "x", "call_id": "other"}, id=f"{int(2e13)}-0")
    call.writer.submit(
        call.rec.append_tool_call(
            name="get_order_status",
            call_id="fc-mine",
            arguments="{}",
            result={},
            error=None,
            duration_ms=1,
            at_ms=1,
        )
    )
    await _end(call)
    lines = await store.transcript(SID)
    assert [t["text"] for t in lines] == ["early", "first"]
    assert lines[1]["id"] > ahead
    assert [t["call_id"] for t in await store.tool_calls(SID)] == ["other", "fc-mine"]
    assert call.rec.duplicates == 0


async def test_bad_input_never_raises_and_is_counted_when_it_runs(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Building an op never raises (the bridge builds them in its message handlers); an
    op that cannot be stored fails when it runs: counted, logged, nothing written, and
    the writes after it go on."""
    store = CallStore(redis_client, keys, 3600)
    await _webhook(store)
    call = _bridge(store)
    rec = call.rec
    bad = [
        rec.append_transcript(role="bot", text="x", item_id="i", offset_ms=0, interrupted=False),
        rec.update_call(from_number=CALLER),
        rec.append_tool_call(
            name="t",
            call_id="c",
            arguments="{}",
            result={"x": object()},
            error=None,
            duration_ms=1,
            at_ms=1,
        ),
        rec.append_event(kind="k", fields={"caller": CALLER}, at_ms=1),
    ]
    for op in bad:
        call.writer.submit(op)
    call.say("user", "still written")
    await _end(call)
    assert call.writer.failed == 4
    assert [t["text"] for t in await store.transcript(SID)] == ["still written"]
    record = await store.get_call(SID)
    assert record is not None and "from_number" not in record
