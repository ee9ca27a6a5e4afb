"""No orphans: a ``switchboard serve`` process SIGKILLed with three live calls; another
instance (the test's stack, same Redis and prefix) closes their records.

Real processes and sockets: the victim is a real OS process bridging real media streams
from the carrier simulator to the local engine (both in the test process). While the
calls are live their records say ``in-progress``; after the kill nobody ends them, their
registry entries expire, and the survivor's orphan reaper closes each one once, after its
deadline: ``status=ended``, ``end_reason="instance lost"``, ``ended_at_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from app.admin.live import live_calls
from app.admin.reaper import OrphanReaper
from app.store.keys import CALL_SHARD_TAGS
from switchboard_sim.calls import CallScript
from switchboard_sim.carrier import CarrierSimulator
from tests.conftest import REDIS_URL
from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, Stack, StackFactory
from tests.helpers import free_ports, wait_until

CALLER = "+1555555{:04d}"
SUPPORT = "+15550100000"
HEARTBEAT_S = 0.3  # registry TTL: three heartbeats, 0.9 s
REAP_S = 0.2


def _victim_env(stack: Stack, base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        SWITCHBOARD_ENV="test",
        SWITCHBOARD_LOG_JSON="false",
        SWITCHBOARD_PUBLIC_BASE_URL=base,
        SWITCHBOARD_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        SWITCHBOARD_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SWITCHBOARD_TWILIO_API_BASE_URL=stack.rest.base_url,
        SWITCHBOARD_REALTIME_URL=stack.settings.realtime.url or "",
        SWITCHBOARD_REALTIME_API_KEY="test-key",
        SWITCHBOARD_REDIS_URL=REDIS_URL,
        SWITCHBOARD_REDIS_PREFIX=stack.settings.redis_prefix,
        SWITCHBOARD_DIALER_ENABLED="false",
        SWITCHBOARD_LIVE_HEARTBEAT_S=str(HEARTBEAT_S),
        SWITCHBOARD_LIVE_REAP_INTERVAL_S=str(REAP_S),
    )
    return env


async def test_calls_of_a_killed_instance_are_closed_by_another(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack: Stack = await make_stack(live_heartbeat_s=HEARTBEAT_S, live_reap_interval_s=REAP_S)
    survivor: OrphanReaper = stack.app.state.reaper
    keys, redis = stack.services.keys, stack.redis
    port, media_port = free_ports(2)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "victim.log"
    with log_path.open("wb") as log_file:
        victim = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "app.cli", "serve", "--port", str(port), "--media-port", str(media_port)),
            env=_victim_env(stack, base),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
    sim = CarrierSimulator(base, base, ACCOUNT_SID, AUTH_TOKEN)
    calls: list[asyncio.Task[Any]] = []
    try:
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                assert victim.returncode is None, log_path.read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(base + "/readyz")).status_code == 200
                return False

            await wait_until(ready, 120, interval_s=0.05, what="the victim ready")
        for n in range(3):
            script = CallScript(
                from_number=CALLER.format(n), to_number=SUPPORT, max_duration_s=120
            )  # a caller who stays on the line
            calls.append(asyncio.create_task(sim.place_inbound_call(script)))

        async def live() -> list[str]:
            return [c.call_sid for c in await live_calls(redis, keys)]  # every shard

        async def three_live_in_progress() -> bool:
            sids = await live()
            if len(sids) != 3:
                return False
            records = [await stack.store.get_call(sid) for sid in sids]
            return all(r is not None and r["status"] == "in-progress" for r in records)

        await wait_until(three_live_in_progress, 60, what="three calls live and in-progress")
        sids = await live()
        holders = {(await redis.hgetall(keys.live_call(sid)))["instance"] for sid in sids}
        assert len(holders) == 1 and holders != {stack.app.state.admin.instance}
        deadlines = {sid: await redis.zscore(keys.live_calls_of(sid), sid) for sid in sids}
        assert survivor.closed == 0

        victim.send_signal(signal.SIGKILL)  # no drain, no last writes: the calls are orphans
        await victim.wait()

        async def all_closed() -> bool:
            records = [await stack.store.get_call(sid) for sid in sids]
            return all(r is not None and r["status"] == "ended" for r in records)

        await wait_until(all_closed, 60, what="the orphans closed")
        for sid in sids:
            record = await stack.store.get_call(sid)
            assert record is not None
            assert record["end_reason"] == "instance lost"
            # Not before its registry entry expired (the victim's last heartbeat + 3 beats).
            assert record["ended_at_ms"] >= deadlines[sid]
        assert survivor.closed == 3  # each closed once, by the survivor
        assert sum([await redis.zcard(keys.live_calls(s)) for s in CALL_SHARD_TAGS]) == 0
        found, _ = await stack.store.query_calls(filters={"status": "in-progress"})
        assert found == []
        for task in calls:  # the carrier saw the media streams drop
            result = await asyncio.wait_for(task, 60)
            assert result.ended_by == "server_closed", result.ended_by
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
