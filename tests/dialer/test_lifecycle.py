"""Campaign lifecycle on a fake clock: validation at create/start/import, start and end
instants, pause/resume, and the outcome tools' backend."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from app.dialer.models import CampaignSpec
from app.dialer.runtime import DialerRuntime
from app.errors import CampaignNotFound, CampaignStateError
from flows import FlowCatalog
from tests.dialer.conftest import ALL_DAYS, T0, Rig, RigFactory, settings_for


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def one(phone: str = "+15555550001") -> list[dict[str, object]]:
    return [{"phone": phone, "timezone": "UTC"}]


async def test_flow_checks_and_required_variables(redis_client: object, redis_prefix: str) -> None:
    flows = FlowCatalog.load()
    rt = DialerRuntime.build(settings_for(redis_prefix), redis_client, flows=lambda: flows)  # type: ignore[arg-type]
    base = {"name": "x", "from_number": "+15550100000", "window": ALL_DAYS.model_dump()}
    with pytest.raises(CampaignStateError, match="not loaded"):
        await rt.campaigns.create(CampaignSpec.model_validate({**base, "flow": "nope"}))
    with pytest.raises(CampaignStateError, match="inbound-only"):
        await rt.campaigns.create(CampaignSpec.model_validate({**base, "flow": "support"}))
    c = await rt.campaigns.create(
        CampaignSpec.model_validate(
            {
                **base,
                "flow": "reminder",
                "voicemail": "leave_message",
                "voicemail_message": "Hi {{first_name}}",
            }
        )
    )
    with pytest.raises(CampaignStateError, match="no contacts"):
        await rt.campaigns.start(c.id)
    csv = (
        "phone,tz,first_name,appointment\n"
        "+15555550001,UTC,Ann,Monday\n"
        "+15555550002,UTC,,Monday\n"  # first_name is used by the flow and the message
        "+15555550003,UTC,Cy,Friday\n"
    )
    report = await rt.campaigns.import_contacts(c.id, csv.encode(), "csv")
    assert report.imported == 2
    assert [(e.row, e.field) for e in report.errors] == [(3, "variables")]
    assert "first_name" in report.errors[0].message
    started = await rt.campaigns.start(c.id)
    assert started.status.value == "running" and started.started_at_ms is not None
    with pytest.raises(CampaignStateError):
        await rt.campaigns.start(c.id)
    with pytest.raises(CampaignNotFound):
        await rt.campaigns.stats("cmp_000000000000")


async def test_nothing_is_dialled_before_start_at(rig: Rig) -> None:
    cid = await rig.campaign(one(), cps=100, start_at=iso(T0 + 3600_000))
    d = rig.dialer("A")
    assert await d.step() == T0 + 3600_000
    assert rig.placer.created == []
    rig.clock.set(T0 + 3600_000)
    await d.step()
    await d.wait_dials()
    assert len(rig.placer.created) == 1
    (attempt,) = (await rig.campaigns.contact_history(cid, "1"))["attempts"]
    assert attempt["due_at_ms"] == T0 + 3600_000 == attempt["dialed_at_ms"]


async def test_waiting_contacts_expire_at_end_at(rig: Rig) -> None:
    contacts = [*one(), {"phone": "+15555550002", "timezone": "UTC"}]
    cid = await rig.campaign(
        contacts, cps=1, end_at=iso(T0 + 500), retry={"busy": {"retries": 1, "backoff_s": [60]}}
    )
    d = rig.dialer("A")
    assert await d.step() == T0 + 500  # one call now; the next slot is after the end
    await d.wait_dials()
    rig.clock.set(T0 + 500)
    await d.step()
    stats = await rig.campaigns.stats(cid)
    assert stats["outcomes"] == {"expired": 1} and stats["in_progress"] == 1
    # The call in flight still finishes; its retry would come after the end: final.
    (attempt,) = (await rig.campaigns.contact_history(cid, "1"))["attempts"]
    await rig.campaigns.finish_attempt(attempt["id"], call_status="busy")
    await d.step()
    stats = await rig.campaigns.stats(cid)
    assert stats["status"] == "completed"
    assert stats["outcomes"] == {"busy": 1, "expired": 1}


async def test_pause_stops_new_dials_and_resume_continues(rig: Rig) -> None:
    cid = await rig.campaign(one() + one("+15555550002"), cps=1)
    d = rig.dialer("A")
    await d.step()
    await d.wait_dials()
    await rig.campaigns.pause(cid)
    rig.clock.set(T0 + 5000)
    await d.step()
    assert len(rig.placer.created) == 1
    with pytest.raises(CampaignStateError):
        await rig.campaigns.pause(cid)
    await rig.campaigns.resume(cid)
    await d.step()
    await d.wait_dials()
    assert len(rig.placer.created) == 2


async def test_outcome_backend_and_tools(rig: Rig) -> None:
    from app.dialer.outcomes import CampaignOutcomes
    from tools.base import Backends, CallInfo, ToolContext
    from tools.registry import default_registry

    cid = await rig.campaign(one(), cps=100)
    d = rig.dialer("A")
    await d.step()
    await d.wait_dials()
    (sid,) = rig.placer.sids
    outcomes = CampaignOutcomes(rig.store, rig.clock)
    registry = default_registry()

    class Control:
        def request_transfer(
            self, to_number: str, reason: str, mode: str | None = None
        ) -> None: ...
        def request_hangup(self, reason: str) -> None: ...
        def record_routing(self, target: str, reason: str) -> None: ...

    def ctx(call_sid: str) -> ToolContext:
        info = CallInfo(call_sid, "outbound", "+15550100000", "+15555550001", "reminder")
        return ToolContext(info, Control(), Backends(None, None, outcomes))  # type: ignore[arg-type]

    stranger = await registry.invoke(
        "record_outcome", "c1", '{"outcome": "confirmed"}', ctx("CA" + "9" * 32)
    )
    assert stranger.error == "not_a_campaign_call"
    bad = await registry.invoke("record_outcome", "c2", '{"outcome": "rescheduled"}', ctx(sid))
    assert bad.error == "tool_error" and "new_time" in bad.output["error"]["message"]
    ok = await registry.invoke(
        "record_outcome", "c3", '{"outcome": "rescheduled", "new_time": "Friday 3 PM"}', ctx(sid)
    )
    assert ok.error is None and ok.output == {
        "ok": True,
        "recorded": "rescheduled",
        "new_time": "Friday 3 PM",
    }
    out = await registry.invoke("opt_out", "c4", '{"reason": "stop"}', ctx(sid))
    assert out.error is None and await rig.store.is_opted_out(cid, "+15555550001")
    # An outcome said after the opt-out does not replace it.
    await registry.invoke("record_outcome", "c5", '{"outcome": "confirmed"}', ctx(sid))
    (attempt,) = (await rig.campaigns.contact_history(cid, "1"))["attempts"]
    assert attempt["result"] == "opted_out"
    await rig.campaigns.finish_attempt(attempt["id"], call_status="completed", answered_by="human")
    contact = (await rig.campaigns.contact_history(cid, "1"))["contact"]
    assert contact["outcome"] == "opted_out"
    no_backend = ToolContext(ctx(sid).call, Control(), Backends(None, None))  # type: ignore[arg-type]
    assert (await registry.invoke("opt_out", "c6", "{}", no_backend)).error == "not_a_campaign_call"


async def test_import_json_report_rows(make_rig: RigFactory) -> None:
    rig = make_rig()
    cid = await rig.campaign(one(), cps=100)
    rows = [
        {"phone": "+15555550010", "timezone": "Europe/Paris"},
        {"phone": "12", "timezone": "UTC"},
        {"phone": "+15555550011", "timezone": "Nowhere/City"},
        {"phone": "+15555550010", "timezone": "UTC"},
    ]
    report = await rig.campaigns.import_contacts(cid, orjson.dumps(rows), "json")
    assert report.imported == 1
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "phone"),
        (3, "timezone"),
        (4, "phone"),
    ]
