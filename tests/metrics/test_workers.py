"""``switchboard serve --workers 2`` as a real subprocess: every scrape of ``/metrics``,
whichever worker answers it, shows the same counts (prometheus_client multiprocess
mode), and the API's HTTP request metrics count what both workers served."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REDIS_URL
from tests.helpers import free_port, wait_until

REQUESTS = 60


def _healthz_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "switchboard_http_requests_total" and s.labels == {
                "method": "GET",
                "route": "/healthz",
                "status": "200",
            }:
                return s.value
    return 0.0


def _per_worker_healthz(directory: Path) -> dict[str, float]:
    """pid → GET /healthz requests that worker counted (its own sample file)."""
    out: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "switchboard_http_requests_total" and labels.get("route") == "/healthz":
                out[pid] = out.get(pid, 0.0) + value
    return out


@pytest.fixture
async def two_workers(tmp_path: Path, redis_prefix: str) -> AsyncIterator[tuple[str, Path]]:
    port, media = free_port(), free_port()
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"stale")  # a previous run's file: emptied at start
    env = {
        **os.environ,
        "SWITCHBOARD_ENV": "dev",
        "SWITCHBOARD_REDIS_URL": REDIS_URL,
        "SWITCHBOARD_REDIS_PREFIX": redis_prefix,
        "SWITCHBOARD_DIALER_ENABLED": "false",
        "SWITCHBOARD_LOG_JSON": "false",
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
        "SWITCHBOARD_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "SWITCHBOARD_DRAIN_GRACE_MS": "0",  # no calls to drain: SIGTERM stops it at once
    }
    log = (tmp_path / "serve.log").open("wb")  # the server's stderr
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "serve", "--workers", "2", "--port", str(port),
        "--media-port", str(media), "--loop", "asyncio",
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        async def both_up() -> bool:  # each worker's sample files exist once it imported
            pids = {p.stem.rpartition("_")[2] for p in shared.glob("*.db")} - {"1"}
            if len(pids) < 2 or process.returncode is not None:
                return process.returncode is not None
            try:
                async with httpx.AsyncClient() as client:
                    ok = (await client.get(f"{base}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False
            probes[0] += ok
            return ok

        probes = [0]

        await wait_until(both_up, 90, interval_s=0.1, what="two workers serving")
        assert process.returncode is None, (tmp_path / "serve.log").read_text()[-3000:]
        assert not (shared / "counter_1.db").exists()
        # Counted once their responses went out: wait for the probes' counts to land.
        await wait_until(
            lambda: sum(_per_worker_healthz(shared).values()) == probes[0], 30, what="probes"
        )
        yield base, shared
    finally:
        log.close()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 40)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_every_scrape_counts_what_all_workers_served(two_workers: tuple[str, Path]) -> None:
    base, shared = two_workers
    before = _per_worker_healthz(shared)

    async def one(path: str) -> httpx.Response:
        # A new connection each time, so the kernel spreads them over the workers.
        async with httpx.AsyncClient(headers={"Connection": "close"}) as client:
            return await client.get(base + path)

    for _ in range(REQUESTS):
        assert (await one("/healthz")).status_code == 200
    await wait_until(  # each is counted as its response ends
        lambda: sum(_per_worker_healthz(shared).values()) == sum(before.values()) + REQUESTS,
        30,
        what="every request counted",
    )
    served = {pid: n - before.get(pid, 0.0) for pid, n in _per_worker_healthz(shared).items()}
    assert sum(served.values()) == REQUESTS
    assert len([n for n in served.values() if n > 0]) == 2, served  # both workers served

    totals = []
    for _ in range(12):  # scrapes answered by either worker
        r = await one("/metrics")
        assert r.status_code == 200
        totals.append(_healthz_count(r.text))
    expected = sum(_per_worker_healthz(shared).values())
    assert totals == [expected] * len(totals)  # the same whichever worker answered
    assert expected == sum(before.values()) + REQUESTS
