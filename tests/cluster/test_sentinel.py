"""Redis Sentinel: the factory's ``redis+sentinel://`` client finds the master Sentinel
names, the store writes through it, and after a failover it writes to the new master.
A master, a replica and one Sentinel of the test's own on loopback ports."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.redis import create_redis, parse_redis_url
from tests.cluster.conftest import _ports
from tests.helpers import wait_until


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[int, int, int]]:
    server = shutil.which("redis-server")
    assert server is not None
    master, replica, sentinel = _ports(3)
    procs = []
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    try:
        for port, extra in ((master, []), (replica, ["--replicaof", "127.0.0.1", str(master)])):
            d = tmp_path / str(port)
            d.mkdir()
            procs.append(
                subprocess.Popen(
                    [server, "--port", str(port), *common, "--dir", str(d), *extra],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master} 1\n"
            "sentinel down-after-milliseconds mymaster 2000\n"
            "sentinel failover-timeout mymaster 10000\n"
        )
        procs.append(
            subprocess.Popen(
                [server, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the replica in sync, the Sentinel sees both
            try:
                info = redis.Redis(port=replica).info("replication")
                s = redis.Redis(port=sentinel)
                replicas = s.execute_command("SENTINEL", "REPLICAS", "mymaster")
                if info.get("master_link_status") == "up" and replicas:
                    break
            except redis.RedisError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the Sentinel setup did not come up")
        yield master, replica, sentinel
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


async def test_the_store_follows_the_master_through_a_failover(
    sentinel_setup: tuple[int, int, int], redis_prefix: str
) -> None:
    master, replica, sentinel = sentinel_setup
    url = f"redis+sentinel://127.0.0.1:{sentinel}/mymaster/0"
    assert parse_redis_url(url).describe().startswith(f"Sentinel 127.0.0.1:{sentinel}")
    client = create_redis(url, retries=5)
    store = CallStore(client, Keys(redis_prefix), 3600)
    try:
        await store.create_call(
            call_sid="CA1",
            direction="inbound",
            from_number="+15555550123",
            to_number="+15550100000",
            flow="support",
            status="ringing",
            created_at_ms=1,
        )
        assert redis.Redis(port=master).exists(Keys(redis_prefix).call("CA1"))

        def failover_started() -> bool:
            # Sentinel refuses (NOGOODSLAVE) until its view of the replica, refreshed by
            # INFO every few seconds, shows the replication link up: ask again until then.
            try:
                redis.Redis(port=sentinel).execute_command("SENTINEL", "FAILOVER", "mymaster")
            except redis.ResponseError as exc:
                if "NOGOODSLAVE" in str(exc):
                    return False
                raise
            return True

        await wait_until(
            failover_started, 30, interval_s=0.5, what="Sentinel to accept the failover"
        )

        def promoted() -> bool:
            role = redis.Redis(port=replica).info("replication").get("role")
            return role == "master"

        await wait_until(promoted, 30, what="the replica promoted")

        new_master = redis.Redis(port=replica, decode_responses=True)

        async def written() -> bool:
            # Until the old master is demoted a pooled connection may still write there
            # (Sentinel's usual window); then the client finds the new master.
            try:
                await store.update_call("CA1", status="completed")
                await asyncio.sleep(0.2)
                stored = new_master.hget(Keys(redis_prefix).call("CA1"), "status")
                read = await store.get_call("CA1") or {}
            except Exception:  # the old master read-only, connections moving: again
                return False
            return stored == "completed" and read.get("status") == "completed"

        await wait_until(written, 30, what="a write through the new master")
    finally:
        await client.aclose()
