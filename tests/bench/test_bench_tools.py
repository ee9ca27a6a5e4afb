"""The load bench's own tools at tiny N: stamps, the echo engine, the generator against
the bare relay and against a real Switchboard stack, the report join, the CLI."""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import Any

import pytest

from bench.echo import EchoServer
from bench.load import Step, capacity, report
from bench.loadgen import Generator, Options
from bench.relay import start_relay
from bench.stamp import payload_bytes, read_stamp, stamped_payload
from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, Stack


def test_stamp_round_trip_and_sizes() -> None:
    p = stamped_payload(513, 70_000)
    raw = base64.b64decode(p, validate=True)
    assert len(raw) == 160 and raw[6:] == b"\xff" * 154
    assert read_stamp(p) == (513, 70_000)
    assert payload_bytes(p) == 160
    for n in (0, 1, 2, 3, 159):
        assert payload_bytes(base64.b64encode(b"x" * n).decode()) == n
    with pytest.raises(ValueError):
        read_stamp("@@")


async def test_generator_against_the_bare_relay() -> None:
    async with EchoServer(barge_every_ms=400) as echo:
        relay = await start_relay("127.0.0.1", 0, f"ws://127.0.0.1:{echo.port}/v1/realtime")
        port = next(iter(relay.sockets)).getsockname()[1]
        try:
            gen = Generator(
                Options(
                    target=f"http://127.0.0.1:{port}",
                    n=3,
                    duration_s=1.0,
                    warmup_s=0.3,
                    drain_s=0.3,
                    mode="relay",
                )
            )
            result = await gen.run()
        finally:
            relay.close()
            await relay.wait_closed()
    assert result["errors"] == [] and result["connected"] == 3
    assert result["frames_expected"] == 150 and result["frames_lost"] == 0
    assert result["crossed"] == 0 and result["unstamped"] == 0
    assert result["rtt_ns"]["count"] == 150 and result["rtt_ns"]["p50"] < 1e9
    assert echo.stats.appends >= 150 and echo.stats.barge_ins


async def test_generator_against_switchboard_joins_barge_ins_and_truncates(
    make_stack: Any,
) -> None:
    echo = EchoServer(barge_every_ms=500)
    await echo.start()
    try:
        stack: Stack = await make_stack(
            realtime_url=f"ws://127.0.0.1:{echo.port}/v1/realtime?model=gpt-realtime"
        )
        gen = Generator(
            Options(
                target=stack.base_url,
                n=2,
                duration_s=1.5,
                warmup_s=0.5,
                drain_s=0.3,
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
            )
        )
        result = await gen.run()
    finally:
        await echo.stop()
    assert result["errors"] == [] and result["connected"] == 2
    assert result["frames_lost"] == 0 and result["crossed"] == 0
    assert result["closed_early"] == 0
    step = Step("switchboard", 2, gen=result, echo=echo.stats.as_json())
    barge = step.barge_ins()
    assert barge["count"] >= 2 and barge["no_clear"] == 0 and barge["invalid_truncates"] == 0
    assert barge["truncate_correct"] == barge["count"]
    assert 0 < barge["p50_ms"] < 1000
    assert echo.stats.errors_sent == 0
    assert capacity([step]) in (0, 2)
    assert "switchboard" in report([step], [], 0.0)


def test_bench_cli_runs_the_load_section_end_to_end() -> None:
    args = ["--n", "2", "--duration", "1", "--warmup", "0.3", "--servers", "relay", "--scale-out"]
    out = subprocess.run(
        [sys.executable, "-m", "bench", "load", "--", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    rows = [line for line in lines if line.startswith("| relay | 2 |")]
    assert rows and all("failed" not in r for r in rows)
    assert any("highest N" in line for line in lines)
