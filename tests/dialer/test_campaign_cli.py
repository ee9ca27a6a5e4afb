"""`switchboard campaign run` and `switchboard simulator` as a user runs them: real
processes against a real server (its in-process dialer), real Redis and real sockets.

Checked: with no carrier answering at a loopback Twilio REST base URL, `campaign run`
stops at once saying what to start (or, asked to, starts the carrier simulator itself and
runs the campaign to its end); with no dialer alive it stops too; `switchboard simulator`
hosts the fake Twilio REST API the dialer places calls through; a dial error shows in
the progress display within seconds, with the next retry time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from app.dialer.models import CampaignSpec
from app.dialer.runtime import DialerRuntime
from tests.conftest import REDIS_URL
from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, Stack, StackFactory, make_stack

__all__ = ["make_stack"]  # the fixture, used here as in tests/e2e

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
ALWAYS = {
    "start": "00:00",
    "end": "23:59:59.999999",
    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
}
SPEC: dict[str, Any] = {
    "name": "CLI reminders",
    "flow": "reminder",
    "from_number": "+15550100000",
    "window": ALWAYS,
    "max_concurrent": 3,
    "cps": 10,
    "retry": {
        "no_answer": {"retries": 1, "backoff_s": [1]},
        "failed": {"retries": 1, "backoff_s": [600]},
    },
}
CSV = (
    "phone,timezone,first_name,appointment\n"
    "+15555557001,America/New_York,Ann,Monday 9 AM\n"
    "+15555557002,Europe/London,Bo,Tuesday 10 AM\n"
    "+15555557004,Asia/Tokyo,Di,Friday 4 PM\n"
)
#: Quick callees: people who answer and hang up without a media stream; one no-answer.
RULES = (
    "default: {kind: person, media: false, ring_ms: 20, hold_ms: 30, amd_ms: 10}\n"
    "numbers:\n"
    "  '+15555557002': {kind: no-answer, ring_ms: 30}\n"
)


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def cli_env(prefix: str, public_base_url: str, rest_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_ENV": "test",
            "SWITCHBOARD_REDIS_URL": REDIS_URL,
            "SWITCHBOARD_REDIS_PREFIX": prefix,
            "SWITCHBOARD_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "SWITCHBOARD_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SWITCHBOARD_TWILIO_API_BASE_URL": rest_url,
            "SWITCHBOARD_PUBLIC_BASE_URL": public_base_url,
            "SWITCHBOARD_LOG_JSON": "false",
            "SWITCHBOARD_LOG_LEVEL": "INFO",
        }
    )
    return env


async def run_cli(*args: str, env: dict[str, str], timeout_s: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SWITCHBOARD,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def files(tmp_path: Path) -> tuple[str, str, str]:
    spec, contacts, rules = tmp_path / "spec.yaml", tmp_path / "contacts.csv", tmp_path / "r.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    contacts.write_text(CSV)
    rules.write_text(RULES)
    return str(spec), str(contacts), str(rules)


async def stack_with_carrier_at(make_stack: StackFactory, port: int) -> Stack:
    """A server whose dialer places calls through ``http://127.0.0.1:port``, once its
    dialer has been seen alive."""
    stack: Stack = await make_stack(
        dialer_poll_ms=50,
        dialer_account_cps=20,
        twilio_api_base_url=f"http://127.0.0.1:{port}",
    )
    runtime: DialerRuntime = stack.app.state.dialer
    async with asyncio.timeout(10):
        for _ in iter(int, 1):  # until its dialer's heartbeat is in Redis
            if await runtime.store.dialers(runtime.clock.now_ms(), 15_000):
                return stack
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def test_campaign_run_without_a_carrier_stops_at_once(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    dead = free_port()
    stack = await stack_with_carrier_at(make_stack, dead)
    env = cli_env(stack.settings.redis_prefix, stack.base_url, f"http://127.0.0.1:{dead}")
    spec, contacts, _ = files(tmp_path)
    for flags in (["--no-simulator"], []):  # outside dev the default is not to start one
        started = time.monotonic()
        code, out, err = await run_cli("campaign", "run", spec, contacts, *flags, env=env)
        assert code == 1, err
        assert time.monotonic() - started < 30  # not the 600 s of silence it used to be
        assert f"nothing answers at http://127.0.0.1:{dead}" in err
        assert "switchboard simulator" in err
        assert out == ""  # nothing was created
    runtime: DialerRuntime = stack.app.state.dialer
    assert await runtime.campaigns.list_campaigns() == []


async def test_campaign_run_without_a_dialer_stops_at_once(
    redis_prefix: str, tmp_path: Path
) -> None:
    env = cli_env(redis_prefix, "http://127.0.0.1:9", f"http://127.0.0.1:{free_port()}")
    spec, contacts, _ = files(tmp_path)
    code, out, err = await run_cli("campaign", "run", spec, contacts, env=env)
    assert code == 1 and out == ""
    assert "no dialer is running" in err and "switchboard serve" in err


async def test_campaign_run_starts_a_carrier_simulator_and_runs_to_the_end(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    port = free_port()
    stack = await stack_with_carrier_at(make_stack, port)
    env = cli_env(stack.settings.redis_prefix, stack.base_url, f"http://127.0.0.1:{port}")
    spec, contacts, rules = files(tmp_path)
    code, out, err = await run_cli(
        "campaign",
        "run",
        spec,
        contacts,
        "--simulator",
        "--simulator-rules",
        rules,
        "--interval",
        "0.1",
        env=env,
    )
    assert code == 0, err
    assert "started the carrier simulator there for this run" in err
    lines = out.splitlines()
    assert lines[0].startswith("campaign cmp_") and "imported 3 contact(s)" in out
    progress = [line for line in lines if "3/3 (100%)" in line]
    assert progress and "completed" in progress[-1]
    # The end summary: a table of outcomes, the attempts, how long it took, who was missed.
    table = lines[lines.index("") + 1 :]
    assert table[0].startswith("campaign cmp_") and ": completed in " in table[0]
    assert [line.split() for line in table[2:6]] == [
        ["outcome", "contacts"],
        ["answered", "2"],
        ["no_answer", "1"],
        ["total", "3"],
    ]
    assert any(line.strip().startswith("attempts ") for line in table)
    missed = table[table.index("  not reached (1)") + 2].split()
    assert missed[:4] == ["3", "+155****7003", "no_answer", "1"] or missed[2] == "no_answer"
    assert "dial errors" not in out and "{" not in out
    assert not listening(port)  # the run's simulator stopped with it


async def test_campaign_run_json_summary(make_stack: StackFactory, tmp_path: Path) -> None:
    port = free_port()
    stack = await stack_with_carrier_at(make_stack, port)
    env = cli_env(stack.settings.redis_prefix, stack.base_url, f"http://127.0.0.1:{port}")
    spec, contacts, rules = files(tmp_path)
    code, out, err = await run_cli(
        "campaign",
        "run",
        spec,
        contacts,
        "--simulator",
        "--simulator-rules",
        rules,
        "--interval",
        "0.1",
        "--json",
        env=env,
    )
    assert code == 0, err
    result = json.loads(out)  # stdout is the JSON alone; progress went to stderr
    assert result["stats"]["outcomes"] == {"answered": 2, "no_answer": 1}
    assert result["started_at_ms"] <= result["ended_at_ms"]
    assert result["not_reached_total"] == 1
    assert [c["outcome"] for c in result["not_reached"]] == ["no_answer"]
    assert "completed" in err


async def test_simulator_process_carries_the_dialers_calls(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    port = free_port()
    stack = await stack_with_carrier_at(make_stack, port)
    env = cli_env(stack.settings.redis_prefix, stack.base_url, f"http://127.0.0.1:{port}")
    _, _, rules = files(tmp_path)
    sim = await asyncio.create_subprocess_exec(
        SWITCHBOARD,
        "simulator",
        "--rules",
        rules,
        env=env,  # its port: the one of SWITCHBOARD_TWILIO_API_BASE_URL
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            while not listening(port):
                assert sim.returncode is None
                await asyncio.sleep(0.05)
        # A second one on the same port says so and exits.
        code, _, err = await run_cli("simulator", "--port", str(port), env=env)
        assert code == 1 and "already in use" in err

        runtime: DialerRuntime = stack.app.state.dialer
        campaign = await runtime.campaigns.create(CampaignSpec.model_validate(SPEC))
        await runtime.campaigns.import_contacts(campaign.id, CSV.encode(), "csv")
        await runtime.campaigns.start(campaign.id)
        async with asyncio.timeout(30):
            for _ in iter(int, 1):  # until the campaign completes
                stats = await runtime.campaigns.stats(campaign.id)
                if stats["status"] == "completed":
                    break
                await asyncio.sleep(0.05)
        assert stats["outcomes"] == {"answered": 2, "no_answer": 1}
        assert stats["dial_errors"] == 0
    finally:
        if sim.returncode is None:
            sim.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, err_b = await sim.communicate()
    assert sim.returncode == 0
    log = err_b.decode()
    assert f"fake Twilio REST API listening on http://127.0.0.1:{port}" in log
    assert "call CA" in log and "to +155****7001" in log and "no-answer" in log
    assert "+15555557001" not in log  # numbers are masked
    assert "stopping:" in log


async def test_a_dial_error_shows_in_the_progress_display_within_seconds(
    make_stack: StackFactory,
) -> None:
    dead = free_port()
    stack = await stack_with_carrier_at(make_stack, dead)
    runtime: DialerRuntime = stack.app.state.dialer
    campaign = await runtime.campaigns.create(CampaignSpec.model_validate(SPEC))
    await runtime.campaigns.import_contacts(campaign.id, CSV.encode(), "csv")
    env = cli_env(stack.settings.redis_prefix, stack.base_url, f"http://127.0.0.1:{dead}")
    watch = await asyncio.create_subprocess_exec(
        SWITCHBOARD,
        "campaign",
        "watch",
        campaign.id,
        "--interval",
        "0.2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    seen: list[str] = []
    try:
        await runtime.campaigns.start(campaign.id)
        started = time.monotonic()
        assert watch.stdout is not None
        async with asyncio.timeout(20):
            while not any("next dial" in line for line in seen) or not any(
                "dial errors 3" in line for line in seen
            ):
                seen.append((await watch.stdout.readline()).decode())
        assert time.monotonic() - started < 20
    finally:
        watch.kill()
        await watch.wait()
        await runtime.campaigns.cancel(campaign.id)
    error = next(line for line in seen if "dial errors 3" in line)
    assert f"cannot connect to http://127.0.0.1:{dead}" in error and "refused" in error
    assert "+155****700" in error and "+15555557" not in error  # masked
    # Connection refused: certainly no call, so each attempt failed at once (no 60 s
    # wait for a callback) and its retry is due after the failed back-off (600 s).
    stats = await runtime.campaigns.stats(campaign.id)
    assert stats["attempt_outcomes"] == {"failed": 3}
    assert stats["lost_dials"] == 0
