"""Campaigns from the endpoints and from the CLI, dialled by the server's in-process
dialer against the offline carrier (real clock, short back-off); plus the carrier
callbacks' faults: forged → 403, unknown call → 2xx."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from app.admin.keys import ApiKeys
from app.dialer.models import CallingWindow
from app.phone import mask
from app.store.keys import Keys
from switchboard_sim.outbound import Callee
from tests.conftest import REDIS_URL
from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, Stack, StackFactory
from tests.helpers import wait_until

ALWAYS = CallingWindow(
    start=time(0),
    end=time(23, 59, 59, 999_999),
    days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
)
SPEC: dict[str, Any] = {
    "name": "API reminders",
    "flow": "reminder",
    "from_number": "+15550100000",
    "window": ALWAYS.model_dump(mode="json"),
    "max_concurrent": 3,
    "cps": 10,
    "retry": {
        "busy": {"retries": 1, "backoff_s": [1]},
        "no_answer": {"retries": 1, "backoff_s": [1]},
    },
}
CSV = (
    "phone,timezone,first_name,appointment\n"
    "+15555557001,America/New_York,Ann,Monday 9 AM\n"
    "+15555557002,Europe/London,Bo,Tuesday 10 AM\n"
    "+1555,UTC,Bad,Never\n"
    "+15555557003,Nowhere/Land,Cy,Friday\n"
    "+15555557001,America/New_York,Ann again,Monday\n"
    "+15555557004,Asia/Tokyo,Di,Friday 4 PM\n"
)
QUICK = Callee("person", media=False, ring_ms=20, hold_ms=30, amd_ms=10)


async def _keys(redis: aioredis.Redis, prefix: str) -> tuple[dict[str, str], dict[str, str]]:
    keys = ApiKeys(redis, Keys(prefix))
    _, read = await keys.create("campaign reader", "read")
    _, write = await keys.create("campaign operator", "write")
    return {"Authorization": f"Bearer {read}"}, {"Authorization": f"Bearer {write}"}


async def _until_completed(http: httpx.AsyncClient, cid: str, read: dict[str, str]) -> Any:
    stats: list[Any] = []

    async def completed() -> bool:
        r = await http.get(f"/admin/campaigns/{cid}/stats", headers=read)
        r.raise_for_status()
        stats[:] = [r.json()]
        return bool(r.json()["status"] == "completed")

    await wait_until(completed, 120, interval_s=0.05, what=f"campaign {cid} completed")
    return stats[0]


async def test_campaign_through_the_endpoints(
    make_stack: StackFactory, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    stack: Stack = await make_stack(dialer_poll_ms=50, dialer_account_cps=20)
    stack.rest.outbound.rules.default = QUICK
    stack.rest.outbound.rules.set("+15555557002", Callee("busy", ring_ms=20), QUICK)
    read, write = await _keys(redis_client, redis_prefix)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        assert (await http.post("/admin/campaigns", json=SPEC)).status_code == 401
        assert (await http.post("/admin/campaigns", json=SPEC, headers=read)).status_code == 403
        r = await http.post("/admin/campaigns", json={**SPEC, "flow": "nope"}, headers=write)
        assert r.status_code == 409 and "not loaded" in r.json()["detail"]
        r = await http.post("/admin/campaigns", json={**SPEC, "cps": 0}, headers=write)
        assert r.status_code == 422
        r = await http.post("/admin/campaigns", json=SPEC, headers=write)
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert r.json()["status"] == "draft"

        r = await http.post(f"/admin/campaigns/{cid}/start", headers=write)
        assert r.status_code == 409 and "no contacts" in r.json()["detail"]
        r = await http.post(
            f"/admin/campaigns/{cid}/contacts",
            content=CSV,
            headers={**write, "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["imported"] == 3 and report["rejected"] == 3
        assert [(e["row"], e["field"]) for e in report["errors"]] == [
            (4, "phone"),
            (5, "timezone"),
            (6, "phone"),
        ]
        r = await http.post(
            f"/admin/campaigns/{cid}/contacts?format=csv",
            content=b"name,tz\nAnn,UTC\n",
            headers=write,
        )
        assert r.status_code == 400

        assert (await http.post(f"/admin/campaigns/{cid}/start", headers=read)).status_code == 403
        r = await http.post(f"/admin/campaigns/{cid}/start", headers=write)
        assert r.status_code == 200 and r.json()["status"] == "running"
        assert (await http.post(f"/admin/campaigns/{cid}/start", headers=write)).status_code == 409

        stats = await _until_completed(http, cid, read)
        assert stats["outcomes"] == {"answered": 3}
        assert (stats["contacts"], stats["done"], stats["attempts"]) == (3, 3, 4)

        r = await http.get(f"/admin/campaigns/{cid}", headers=read)
        assert r.status_code == 200 and r.json()["stats"]["status"] == "completed"
        r = await http.get(f"/admin/campaigns/{cid}/contacts", headers=read)
        contacts = r.json()["items"]
        assert r.json()["next_cursor"] is None
        assert [c["phone_masked"] for c in contacts] == [
            mask("+15555557001"),
            mask("+15555557002"),
            mask("+15555557004"),
        ]
        assert all("phone" not in c for c in contacts)
        r = await http.get(f"/admin/campaigns/{cid}/contacts/2", headers=read)
        history = r.json()
        assert [a["outcome"] for a in history["attempts"]] == ["busy", "answered"]
        busy, answered = history["attempts"]
        assert answered["due_at_ms"] == busy["retry_at_ms"] == busy["ended_at_ms"] + 1000
        assert answered["answered_by"] == "human" and answered["call_sid"].startswith("CA")
        assert (
            await http.get(f"/admin/campaigns/{cid}/contacts/9", headers=read)
        ).status_code == 404
        assert (
            await http.get("/admin/campaigns/cmp_000000000000", headers=read)
        ).status_code == 404
        assert (await http.post(f"/admin/campaigns/{cid}/pause", headers=write)).status_code == 409
        r = await http.post(
            f"/admin/campaigns/{cid}/contacts",
            files={"file": ("more.csv", b"phone,tz\n+15555557009,UTC\n", "text/csv")},
            headers=write,
        )
        assert r.status_code == 409  # a completed campaign takes no more contacts
        listed = (await http.get("/admin/campaigns", headers=read)).json()
        assert [c["id"] for c in listed["items"]] == [cid] and listed["next_cursor"] is None
        r = await http.get(f"/admin/campaigns/{cid}/contacts", headers=read, params={"limit": 2})
        first = r.json()
        r = await http.get(
            f"/admin/campaigns/{cid}/contacts",
            headers=read,
            params={"limit": 2, "cursor": first["next_cursor"]},
        )
        assert [c["id"] for c in first["items"] + r.json()["items"]] == ["1", "2", "3"]
        assert r.json()["next_cursor"] is None

        # Carrier callbacks: forged → 403 (nothing stored); unknown call → 204, logged.
        sid = answered["call_sid"]
        forged = {"CallSid": sid, "CallStatus": "completed", "AccountSid": ACCOUNT_SID}
        r = await http.post(
            "/twilio/status?attempt=" + answered["id"],
            data=forged,
            headers={"X-Twilio-Signature": "forged"},
        )
        assert r.status_code == 403
        r = await http.post("/twilio/amd", data={**forged, "AnsweredBy": "machine_end_beep"})
        assert r.status_code == 403
        unknown = {"CallSid": "CA" + "e" * 32, "CallStatus": "completed", "AccountSid": ACCOUNT_SID}
        url = stack.base_url + "/twilio/status"
        r = await http.post(
            "/twilio/status",
            data=unknown,
            headers={"X-Twilio-Signature": stack.sim.sign(url, unknown)},
        )
        assert r.status_code == 204
        amd = {**unknown, "AnsweredBy": "human"}
        url = stack.base_url + "/twilio/amd"
        r = await http.post(
            "/twilio/amd", data=amd, headers={"X-Twilio-Signature": stack.sim.sign(url, amd)}
        )
        assert r.status_code == 204
        # A late duplicate of a real final callback changes nothing.
        late = {"CallSid": sid, "CallStatus": "busy", "AccountSid": ACCOUNT_SID}
        url = f"{stack.base_url}/twilio/status?attempt={answered['id']}"
        r = await http.post(
            f"/twilio/status?attempt={answered['id']}",
            data=late,
            headers={"X-Twilio-Signature": stack.sim.sign(url, late)},
        )
        assert r.status_code == 204
        again = (await http.get(f"/admin/campaigns/{cid}/contacts/2", headers=read)).json()
        assert again == history


@pytest.mark.parametrize("watch_interval", ["0.1"])
async def test_campaign_from_the_cli(
    make_stack: StackFactory, tmp_path: Path, watch_interval: str
) -> None:
    stack: Stack = await make_stack(dialer_poll_ms=50, dialer_account_cps=20)
    stack.rest.outbound.rules.default = QUICK
    stack.rest.outbound.rules.set("+15555557002", Callee("no-answer", ring_ms=30))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "name": "CLI reminders"}))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CSV)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_ENV": "test",
            "SWITCHBOARD_REDIS_URL": REDIS_URL,
            "SWITCHBOARD_REDIS_PREFIX": stack.settings.redis_prefix,
            "SWITCHBOARD_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "SWITCHBOARD_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SWITCHBOARD_PUBLIC_BASE_URL": stack.base_url,
        }
    )
    exe = str(Path(sys.executable).with_name("switchboard"))
    proc = await asyncio.create_subprocess_exec(
        exe,
        "campaign",
        "run",
        str(spec),
        str(contacts),
        "--interval",
        watch_interval,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out_b, err_b = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("campaign cmp_") and lines[0].endswith("created")
    assert "imported 3 contact(s), rejected 3 row(s)" in out
    assert "row 4 [phone]: malformed phone number (not E.164)" in err
    progress = [line for line in lines if "CLI reminders" in line and "[" in line]
    assert progress and progress[-1].endswith("3/3 (100%)") and "completed" in progress[-1]
    assert any("waiting" in line and "attempts" in line for line in lines)
    # The end summary: contacts per outcome, and the one not reached with its reason.
    table = [line.split() for line in lines[lines.index("") :]]
    assert ["answered", "2"] in table and ["no_answer", "1"] in table and ["total", "3"] in table
    assert any(row[:3] == ["2", "+155****7002", "no_answer"] for row in table)
    cid = lines[0].split()[1]

    stats = await asyncio.create_subprocess_exec(
        exe, "campaign", "stats", cid, "--json", env=env, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        stats_out, _ = await stats.communicate()
    assert '"status": "completed"' in stats_out.decode()
