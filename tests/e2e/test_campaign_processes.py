"""Three ``switchboard dialer`` processes share one campaign; one is SIGKILLed mid-run.

The server (callbacks) and the carrier simulator run in the test process; the dialers
are real OS processes talking to the same Redis and the simulator's REST API. The kill
is aimed: once the victim is seen holding a lease or a dial in progress it is frozen
(SIGSTOP), and killed if it still holds it. Every wait is on a condition with a generous
deadline, and the dialers' lease and grace times leave room for a busy CPU, so the test
holds on a loaded machine. Checked: every contact ends in its expected state, no attempt
reaches the carrier twice, every placed call is in its contact's history, nobody is
called twice at once, the concurrency cap and the CPS limit held across processes, and
the victim's work was recovered.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from datetime import time
from pathlib import Path
from typing import Any

import orjson

from app.dialer.models import CallingWindow, CampaignSpec
from app.dialer.runtime import DialerRuntime
from app.store.keys import Keys
from switchboard_sim.outbound import Callee
from tests.conftest import REDIS_URL
from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, Stack, StackFactory, eventually
from tests.helpers import wait_until

ALWAYS = CallingWindow(
    start=time(0),
    end=time(23, 59, 59, 999_999),
    days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
)
CAP, CPS = 6, 20
SWITCHBOARD = Path(sys.executable).with_name("switchboard")


def _groups() -> dict[str, list[str]]:
    phones = [f"+1555556{n:04d}" for n in range(60)]
    return {
        "person": phones[0:24],
        "busy_then_person": phones[24:36],
        "no_answer": phones[36:48],
        "failed": phones[48:54],
        "busy": phones[54:60],
    }


EXPECTED = {
    "person": "answered",
    "busy_then_person": "answered",
    "no_answer": "no_answer",
    "failed": "failed",
    "busy": "busy",
}


def _dialer_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_ENV": "test",
            "SWITCHBOARD_REDIS_URL": REDIS_URL,
            "SWITCHBOARD_REDIS_PREFIX": stack.settings.redis_prefix,
            "SWITCHBOARD_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "SWITCHBOARD_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SWITCHBOARD_TWILIO_API_BASE_URL": stack.rest.base_url,
            "SWITCHBOARD_PUBLIC_BASE_URL": stack.base_url,
            # Long enough that a survivor slowed down by a busy CPU keeps its own work.
            "SWITCHBOARD_DIALER_LEASE_MS": "3000",
            "SWITCHBOARD_DIALER_DIAL_GRACE_MS": "5000",
            "SWITCHBOARD_DIALER_CALL_GRACE_MS": "10000",
            "SWITCHBOARD_DIALER_POLL_MS": "25",
            "SWITCHBOARD_DIALER_HEARTBEAT_MS": "200",
            "SWITCHBOARD_DIALER_ACCOUNT_CPS": str(CPS),
            "SWITCHBOARD_LOG_JSON": "false",
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
        }
    )
    return env


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (state ``T`` in /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


async def _leases_of(runtime: DialerRuntime, cid: str, owner: str) -> list[dict[str, str]]:
    """In-flight attempts of ``owner`` not yet known to the carrier (leased or dialing)."""
    keys = Keys(runtime.settings.redis_prefix)
    held = []
    for aid in await runtime.redis.zrange(keys.campaign_inflight(cid), 0, -1):
        a = await runtime.store.attempt(aid)
        unfinished = a.get("state") in ("leased", "dialing") and not a.get("call_sid")
        if a.get("owner") == owner and unfinished:
            held.append(a)
    return held


async def test_three_dialer_processes_one_killed(make_stack: StackFactory) -> None:
    stack: Stack = await make_stack(dialer_enabled=False, dialer_account_cps=CPS)
    runtime: DialerRuntime = stack.app.state.dialer
    campaigns = runtime.campaigns
    groups = _groups()
    rules = stack.rest.outbound.rules
    quick = Callee("person", media=False, ring_ms=20, hold_ms=40, amd_ms=10)
    for phone in groups["person"]:
        rules.set(phone, quick)
    for phone in groups["busy_then_person"]:
        rules.set(phone, Callee("busy", ring_ms=20), quick)
    for phone in groups["no_answer"]:
        rules.set(phone, Callee("no-answer", ring_ms=40))
    for phone in groups["failed"]:
        rules.set(phone, Callee("failed"))
    for phone in groups["busy"]:
        rules.set(phone, Callee("busy", ring_ms=20))

    spec = CampaignSpec(
        name="multi-process",
        flow="reminder",
        from_number="+15550100000",
        window=ALWAYS,
        max_concurrent=CAP,
        cps=CPS,
        retry={  # type: ignore[arg-type]
            "busy": {"retries": 1, "backoff_s": [1]},
            "no_answer": {"retries": 1, "backoff_s": [1]},
            "failed": {"retries": 1, "backoff_s": [1]},
        },
        voicemail="hang_up",  # type: ignore[arg-type]
    )
    campaign = await campaigns.create(spec)
    cid = campaign.id
    rows = [
        {"phone": p, "timezone": "UTC", "variables": {"first_name": "X", "appointment": "soon"}}
        for g in groups.values()
        for p in g
    ]
    report = await campaigns.import_contacts(cid, orjson.dumps(rows), "json")
    assert report.imported == 60

    env = _dialer_env(stack)
    names = ["dialer-a", "dialer-b", "dialer-c"]
    procs = {
        name: await asyncio.create_subprocess_exec(
            str(SWITCHBOARD),
            "dialer",
            "--id",
            name,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for name in names
    }
    victim = procs["dialer-b"]
    caught: list[dict[str, str]] = []

    def alive(*but: Any) -> None:
        for name, p in procs.items():
            assert p in but or p.returncode is None, f"{name} exited {p.returncode}"

    async def all_heartbeating() -> bool:
        alive()
        return len(await runtime.store.dialers(runtime.clock.now_ms(), 5000)) == 3

    async def victim_caught() -> bool:
        """Seen holding unfinished work: freeze it and look again (it may have moved on)."""
        nonlocal caught
        if not await _leases_of(runtime, cid, "dialer-b"):
            assert not await completed(), "the campaign completed before the victim was caught"
            return False
        victim.send_signal(signal.SIGSTOP)
        await wait_until(lambda: _stopped(victim.pid), what="the victim stopped")
        caught = await _leases_of(runtime, cid, "dialer-b")
        if not caught:
            victim.send_signal(signal.SIGCONT)
        return bool(caught)

    async def completed() -> bool:
        alive(victim)
        return bool((await campaigns.stats(cid))["status"] == "completed")

    try:
        await wait_until(all_heartbeating, 120, interval_s=0.05, what="3 dialers heartbeating")
        await campaigns.start(cid)

        # Let some calls go out, then catch the victim holding unfinished work.
        await eventually(lambda: len(stack.rest.outbound.log) >= 12, timeout_s=120)
        await wait_until(victim_caught, 120, interval_s=0.001, what="victim holding a lease")
        victim.kill()
        await victim.wait()

        await wait_until(completed, 240, interval_s=0.05, what="campaign completed")
        await stack.rest.outbound.wait_idle(60)
    finally:
        for p in procs.values():
            if p.returncode is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in procs.values():
            try:
                async with asyncio.timeout(10):
                    await p.wait()
            except TimeoutError:
                p.kill()

    stats = await campaigns.stats(cid)
    assert (stats["done"], stats["pending"], stats["in_progress"]) == (60, 0, 0)
    log = list(stack.rest.outbound.log)
    # No attempt reached the carrier twice.
    attempt_ids = [r.attempt for r in log]
    assert None not in attempt_ids and len(attempt_ids) == len(set(attempt_ids))
    creates: dict[str, list[str]] = {}
    for r in log:
        creates.setdefault(r.to, []).append(str(r.attempt))
    owners: set[str] = set()
    for n, row in enumerate(rows, start=1):
        group = next(g for g, members in groups.items() if row["phone"] in members)
        h = await campaigns.contact_history(cid, str(n))
        assert h["contact"]["outcome"] == EXPECTED[group], (group, h)
        placed = [a["id"] for a in h["attempts"] if a["call_sid"]]
        assert creates.get(row["phone"], []) == placed, (group, h)
        owners |= {a["owner"] for a in h["attempts"]}
    assert owners <= set(names) and len(owners) >= 2

    # Nobody was called twice at once, and the cap held across processes.
    results = [stack.rest.outbound.results[r.sid] for r in log]
    by_number: dict[str, list[Any]] = {}
    for res in results:
        by_number.setdefault(res.to, []).append(res)
    for calls in by_number.values():
        calls.sort(key=lambda c: c.started_at)
        for a, b in itertools.pairwise(calls):
            assert a.ended_at is not None and a.ended_at <= b.started_at
    edges = sorted(
        [(r.started_at, 1) for r in results] + [(r.ended_at or 0.0, -1) for r in results],
        key=lambda e: (e[0], e[1]),
    )
    live = peak = 0
    for _, delta in edges:
        live += delta
        peak = max(peak, live)
    assert peak <= CAP
    # CPS: call slots were taken at least 1/CPS apart, all dialers together.
    dialed: list[int] = []
    for n in range(1, 61):
        dialed += [
            a["dialed_at_ms"] for a in (await campaigns.contact_history(cid, str(n)))["attempts"]
        ]
    dialed.sort()
    assert min(b - a for a, b in itertools.pairwise(dialed)) >= 1000 // CPS

    # The victim was killed holding unfinished work, which the survivors recovered: a
    # lease went back to the queue (and was never dialled under its old id), a dial in
    # progress either reached the carrier or was counted lost and retried.
    assert caught, "the victim was never caught holding a lease"
    for a in caught:
        if a["state"] == "leased":
            assert a["id"] not in attempt_ids
    if any(a["state"] == "leased" for a in caught):
        assert stats["recovered_leases"] >= 1
    for a in caught:
        if a["state"] == "dialing" and a["id"] not in attempt_ids:
            assert stats["lost_dials"] >= 1
