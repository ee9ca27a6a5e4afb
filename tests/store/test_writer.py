"""StoreWriter: ordering, non-blocking submit, retries through an outage, overflow, close."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable
from functools import partial

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from app.errors import StoreError
from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.writer import StoreWriter, is_transient
from tests.helpers import RedisServerFactory, wait_until


@pytest.fixture
def store(redis_client: aioredis.Redis, redis_prefix: str) -> CallStore:
    return CallStore(redis_client, Keys(redis_prefix), 3600)


def _line(store: CallStore, n: int) -> Awaitable[object]:
    return store.append_transcript(
        "CA1", role="user", text=f"line {n}", item_id=f"i{n}", offset_ms=n, interrupted=False
    )


async def test_writes_in_order_and_close_flushes(store: CallStore) -> None:
    writer = StoreWriter("CA1")
    runner = asyncio.create_task(writer.run())
    await asyncio.sleep(0)  # run() is waiting for work
    for n in range(50):
        writer.submit(partial(_line, store, n))
    await writer.close(timeout_s=5)
    await runner
    lines = await store.transcript("CA1")
    assert [t["offset_ms"] for t in lines] == list(range(50))
    assert (writer.written, writer.failed, writer.dropped) == (50, 0, 0)


async def test_close_without_run_drains_inline(store: CallStore) -> None:
    writer = StoreWriter("CA1")
    writer.submit(lambda: _line(store, 1))
    await writer.close(timeout_s=5)
    assert writer.written == 1
    assert len(await store.transcript("CA1")) == 1
    writer.submit(lambda: _line(store, 2))
    assert writer.dropped == 1


async def test_submit_never_blocks_while_redis_is_stalled(
    redis_server: RedisServerFactory, redis_prefix: str
) -> None:
    server = await redis_server()  # of its own: frozen below, the shared Redis is untouched
    client = aioredis.from_url(server.url, decode_responses=True)
    store = CallStore(client, Keys(redis_prefix), 3600)
    writer = StoreWriter("CA1")
    runner = asyncio.create_task(writer.run())
    try:
        server.freeze()  # stalled until thawed: every write waits, however slow the machine
        writer.submit(lambda: _line(store, 0))
        await asyncio.sleep(0)  # let run() start the first op; it now waits on Redis
        started = time.perf_counter()
        for n in range(1, 200):
            writer.submit(partial(_line, store, n))
        elapsed = time.perf_counter() - started
        # 199 submits cost microseconds; one waiting on Redis would wait for the thaw.
        assert elapsed < 1.0, f"submit() took {elapsed:.3f}s"
        assert writer.pending >= 199
        assert writer.written == 0
    finally:
        server.thaw()
    await writer.close(timeout_s=30)
    await runner
    assert writer.written == 200
    assert len(await store.transcript("CA1")) == 200
    await client.aclose()


async def test_other_errors_are_retried_once_then_counted(
    store: CallStore, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: dict[str, int] = {"flaky": 0, "broken": 0}

    async def flaky() -> None:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise ValueError("boom")

    async def broken() -> None:
        attempts["broken"] += 1
        raise ValueError("bad data")

    writer = StoreWriter("CA1", retry_delay_s=0)
    runner = asyncio.create_task(writer.run())
    with caplog.at_level(logging.WARNING, logger="app.store.writer"):
        writer.submit(flaky)
        writer.submit(broken)
        writer.submit(lambda: _line(store, 7))
        await writer.close(timeout_s=5)
    await runner
    assert attempts == {"flaky": 2, "broken": 2}
    assert (writer.written, writer.failed, writer.dropped) == (2, 1, 0)
    assert any("broken" in r.getMessage() and "given up" in r.getMessage() for r in caplog.records)
    assert len(await store.transcript("CA1")) == 1


def test_what_counts_as_redis_being_away() -> None:
    assert is_transient(redis_errors.ConnectionError("refused"))
    assert is_transient(redis_errors.BusyLoadingError("LOADING Redis is loading"))
    assert is_transient(redis_errors.TimeoutError("timed out"))
    assert is_transient(ConnectionRefusedError())
    assert is_transient(redis_errors.ResponseError("READONLY You can't write against a replica"))
    wrapped = StoreError("append failed")
    wrapped.__cause__ = redis_errors.ConnectionError("reset")
    assert is_transient(wrapped)
    assert not is_transient(StoreError("malformed record"))
    assert not is_transient(redis_errors.ResponseError("WRONGTYPE Operation against a key"))
    assert not is_transient(ValueError("role must be user or assistant"))


async def test_unreachable_redis_is_retried_in_order_until_it_answers() -> None:
    """The op at the head is retried with a doubling backoff (capped) while Redis is
    away; the ops behind it wait their turn and then run in order."""
    down = {"left": 6}
    done: list[int] = []
    attempts: list[float] = []

    async def op(n: int) -> None:
        if n == 0:
            attempts.append(asyncio.get_running_loop().time())
            if down["left"]:
                down["left"] -= 1
                raise redis_errors.ConnectionError("Connection refused")
        done.append(n)

    writer = StoreWriter("CA1", retry_delay_s=0.01, retry_max_delay_s=0.04, outage_s=60)
    runner = asyncio.create_task(writer.run())
    for n in range(5):
        writer.submit(partial(op, n))
    await writer.close(timeout_s=30)
    await runner
    assert done == [0, 1, 2, 3, 4]
    assert (writer.written, writer.retried, writer.failed, writer.dropped) == (5, 6, 0, 0)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(gaps) == 6
    # 10, 20, 40, 40, 40, 40 ms: never shorter than the backoff (sleeps only overshoot).
    assert all(
        g >= d * 0.99 for g, d in zip(gaps, [0.01, 0.02, 0.04, 0.04, 0.04, 0.04], strict=True)
    )


async def test_outage_longer_than_store_outage_s_gives_ops_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past ``outage_s`` the head op is given up and each op behind gets one attempt
    until Redis answers again; then writes go on. One error log for the call."""
    state = {"up": False}
    tries: dict[int, int] = {}

    async def op(n: int) -> None:
        tries[n] = tries.get(n, 0) + 1
        if not state["up"]:
            raise redis_errors.ConnectionError("Connection refused")

    writer = StoreWriter("CA1", retry_delay_s=0.01, retry_max_delay_s=0.02, outage_s=0.2)
    runner = asyncio.create_task(writer.run())
    with caplog.at_level(logging.WARNING, logger="app.store.writer"):
        for n in range(3):
            writer.submit(partial(op, n))
        await wait_until(lambda: writer.failed == 3)
        state["up"] = True
        writer.submit(partial(op, 3))
        await writer.close(timeout_s=5)
    await runner
    assert tries[0] > 2 and tries[1] == 1 and tries[2] == 1 and tries[3] == 1
    assert (writer.written, writer.failed) == (1, 3)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len([r for r in errors if "given up" in r.getMessage()]) == 1
    assert any("gave up 3" in r.getMessage() for r in errors)


async def test_overflow_drops_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    done: list[int] = []

    async def op(n: int) -> None:
        done.append(n)

    writer = StoreWriter("CA9", max_pending=3)
    with caplog.at_level(logging.ERROR, logger="app.store.writer"):
        for n in range(10):
            writer.submit(partial(op, n))
    assert writer.dropped == 7
    assert len([r for r in caplog.records if "CA9" in r.getMessage()]) == 1
    await writer.close(timeout_s=1)
    assert done == [0, 1, 2]


async def test_close_deadline_abandons_stuck_op() -> None:
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    async def quick() -> None:
        return None

    writer = StoreWriter("CA1")
    runner = asyncio.create_task(writer.run())
    writer.submit(stuck)
    writer.submit(quick)
    await asyncio.sleep(0)
    await writer.close(timeout_s=0.05)
    await runner  # returned normally: close's own cancel is absorbed
    assert not runner.cancelled()
    assert writer.dropped == 2
    assert writer.written == 0


async def test_outer_cancel_propagates() -> None:
    writer = StoreWriter("CA1")
    runner = asyncio.create_task(writer.run())
    await asyncio.sleep(0)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
