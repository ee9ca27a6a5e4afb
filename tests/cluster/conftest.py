"""A real three-master Redis Cluster on loopback ports, for the whole session.

``redis_cluster`` starts three ``redis-server --cluster-enabled yes`` in a tmp dir, joins
them with ``redis-cli --cluster create … --cluster-replicas 0`` and waits for
``cluster_state:ok`` on every node. Tests in this package get ``redis_client`` (and so
every fixture built on it, like the dialer rig) as a ``redis+cluster://`` client from
``app.store.redis.create_redis``, with the test's own key prefix cleaned up after.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from app.store.redis import create_redis
from tests.admin.conftest import make_admin  # noqa: F401  (admin stacks, on the cluster)
from tests.dialer.conftest import make_rig, rig  # noqa: F401  (the rig, on the cluster)
from tests.e2e.conftest import make_stack  # noqa: F401

MASTERS = 3
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Cluster:
    ports: tuple[int, ...]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3``."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(n: int) -> list[int]:
    """``n`` ports free with their cluster bus ports (+10000)."""
    found: list[int] = []
    while len(found) < n:
        port = random.randint(20_000, 40_000)
        if port not in found and _free(port) and _free(port + 10_000):
            found.append(port)
    return found


def _wait(condition: object, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():  # type: ignore[operator]
                return
        time.sleep(0.05)
    tails = "\n".join(p.read_text(errors="replace")[-1500:] for p in logs if p.exists())
    raise RuntimeError(f"Redis Cluster: {what} not reached in {START_TIMEOUT_S:g} s\n{tails}")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.fail("redis-server and redis-cli are needed (scripts/setup.sh installs them)")
    root = tmp_path_factory.mktemp("redis-cluster")
    ports = _ports(MASTERS)
    procs: list[subprocess.Popen[bytes]] = []
    logs = [root / f"{p}.log" for p in ports]
    try:
        for port, log in zip(ports, logs, strict=True):
            directory = root / str(port)
            directory.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(directory),
                        "--logfile",
                        str(log),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        clients = [redis.Redis(port=p, socket_timeout=1.0) for p in ports]
        _wait(lambda: all(c.ping() for c in clients), "PING on every node", logs)
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=START_TIMEOUT_S,
        )  # fmt: skip

        def ok() -> bool:
            states = [c.cluster("info") for c in clients]  # parsed into a dict
            return all(str(s.get("cluster_state")) in ("ok", "b'ok'") for s in states)

        _wait(ok, "cluster_state:ok on every node", logs)
        for c in clients:
            c.close()
        yield Cluster(tuple(ports))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
async def redis_client(redis_cluster: Cluster, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A ``redis+cluster://`` client from the service's factory; the test's keys (on
    every master) are deleted after."""
    client = create_redis(redis_cluster.url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{redis_prefix}*", count=500)]
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.delete(key)
        await pipe.execute()
    await client.aclose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this package on one xdist worker (``--dist loadgroup``): one Redis
    Cluster for them all, not one per worker."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents:
            item.add_marker(pytest.mark.xdist_group("redis-cluster"))
