"""Post-call analysis: a real offline call through the server and the local engine gets a
summary and schema-valid fields (from the call.ended event, on whichever instance claims
it), sent signed as call.analyzed; a flow whose schema the analysis cannot satisfy gets
a stored failure, never an exception; re-runs over the API; flow files with a bad
analysis section are refused with line numbers."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.analysis.local import LocalAnalyzer
from app.analysis.model import AnalysisInput, ToolUse, Turn
from app.analysis.service import validation_errors
from app.events import call_event
from flows import FlowCatalog, FlowFileError, parse_flow
from flows.analysis import AnalysisSettings
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from tests.admin.conftest import AdminFactory, AdminStack, order_call
from tests.helpers import wait_until
from tests.webhooks.receiver import Receiver, running

CALLER = "+15555550123"
SUPPORT = "+15550100000"


async def analysis_of(admin: AdminStack, sid: str) -> dict[str, Any] | None:
    r = await admin.http.get(f"/admin/calls/{sid}/analysis", headers=admin.read)
    return r.json() if r.status_code == 200 else None


async def test_a_finished_call_carries_a_schema_valid_analysis(make_admin: AdminFactory) -> None:
    admin: AdminStack = await make_admin(events_poll_ms=20)
    receiver = Receiver()
    async with running(receiver):
        r = await admin.http.post(
            "/admin/webhooks",
            headers=admin.write,
            json={"url": receiver.url, "events": ["call.analyzed"]},
        )
        assert r.status_code == 201
        sid = await order_call(admin)
        # What the bridge submits through its store writer when a call ends.
        await call_event(
            admin.stack.services, "call.ended", sid, reason="hangup", outcome="completed"
        )

        async def analysed() -> bool:
            return await analysis_of(admin, sid) is not None

        await wait_until(analysed, 30, what="the analysis stored")
        await wait_until(lambda: len(receiver.delivered()) == 1, 30, what="call.analyzed sent")

    analysis = await analysis_of(admin, sid)
    assert analysis is not None and analysis["status"] == "ok", analysis
    assert analysis["engine"] == "local" and analysis["error"] is None
    spec = admin.stack.services.flows.get("support")
    assert spec is not None and spec.analysis is not None
    Draft202012Validator(spec.analysis.fields).validate(analysis["fields"])  # schema-valid
    fields = analysis["fields"]
    assert fields["resolved"] is True and analysis["success"] is True
    assert fields["reason"] == "order_status" and fields["order_id"] == "1042"
    assert fields["delivery_date"] == "2026-11-24"  # from the tool's result
    summary = analysis["summary"]
    assert "get_order_status" in summary and "1042" in summary and "shipped" in summary
    # The call page's JSON carries it too, and the webhook sent it.
    detail = (await admin.http.get(f"/admin/calls/{sid}", headers=admin.read)).json()
    assert detail["analysis"]["fields"] == fields
    sent = receiver.delivered()[0].event
    assert sent["type"] == "call.analyzed" and sent["data"]["call_sid"] == sid
    assert sent["data"]["analysis"]["fields"] == fields
    assert CALLER not in str(sent)

    # Re-run over the API (write key): the same deterministic answer.
    r = await admin.http.post(f"/admin/calls/{sid}/analysis", headers=admin.read)
    assert r.status_code == 403
    r = await admin.http.post(f"/admin/calls/{sid}/analysis", headers=admin.write)
    assert r.status_code == 200 and r.json()["fields"] == fields


async def test_an_unsatisfiable_schema_is_a_stored_failure(
    make_admin: AdminFactory, tmp_path: Any
) -> None:
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    strict = (FlowCatalog.load().flows["support"]).model_dump(mode="json", exclude_none=True)
    strict["analysis"] = {
        "fields": {
            "type": "object",
            "properties": {"callback_date": {"type": "string", "format": "date"}},
            "required": ["callback_date"],
        }
    }
    (flows_dir / "support.yaml").write_text(yaml.safe_dump(strict))
    admin: AdminStack = await make_admin(flows_dir=flows_dir, events_poll_ms=20)
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("goodbye")],
        hangup_after_ms=1500,  # a finished call is all the analysis needs
        frame_interval_ms=5,  # at 4x speed
        first_wait_ms=12_000,
        max_duration_s=120,
    )
    result = await admin.stack.sim.place_inbound_call(script)
    r = await admin.http.post(f"/admin/calls/{result.call_sid}/analysis", headers=admin.write)
    assert r.status_code == 200, r.text
    failed = r.json()
    assert failed["status"] == "failed" and failed["fields"] == {}, failed
    assert "callback_date" in failed["error"] and "required" in failed["error"]
    stored = await analysis_of(admin, result.call_sid)
    assert stored is not None and stored["status"] == "failed"


async def test_nothing_to_analyse(admin: AdminStack) -> None:
    r = await admin.http.post("/admin/calls/CA" + "0" * 32 + "/analysis", headers=admin.write)
    assert r.status_code == 404
    sid = "CA" + "1" * 32
    await admin.stack.store.create_call(
        call_sid=sid,
        direction="inbound",
        from_number=CALLER,
        to_number=SUPPORT,
        flow="support",
        status="ended",
        created_at_ms=1_800_000_000_000,
    )
    r = await admin.http.post(f"/admin/calls/{sid}/analysis", headers=admin.write)
    assert r.status_code == 409 and r.json()["code"] == "not_analysable"
    r = await admin.http.get(f"/admin/calls/{sid}/analysis", headers=admin.read)
    assert r.status_code == 404


def _call(turns: list[tuple[str, str]], tools: list[ToolUse], end: str = "hangup") -> AnalysisInput:
    return AnalysisInput(
        call_sid="CA1",
        flow="reminder",
        direction="outbound",
        end_reason=end,
        turns=[Turn(role, text, i * 1000) for i, (role, text) in enumerate(turns)],
        tools=tools,
    )


async def test_the_local_analysis_fills_fields_by_schema() -> None:
    spec = FlowCatalog.load().flows["reminder"].analysis
    assert spec is not None
    call = _call(
        [("assistant", "Hi Ann, can you make it?"), ("user", "Yes, I'll be there, thanks.")],
        [ToolUse("record_outcome", {"outcome": "confirmed"}, {"ok": True}, at_ms=1500)],
    )
    got = await LocalAnalyzer().analyze(call, spec)
    assert got["fields"] == {"outcome": "confirmed", "reached": True}
    assert validation_errors(spec, got["fields"]) == []
    nobody = _call([("assistant", "Hi Ann, can you make it?")], [], end="carrier stop")
    fields = (await LocalAnalyzer().analyze(nobody, spec))["fields"]
    assert fields == {"outcome": "unknown", "reached": False}
    enum_only = AnalysisSettings(
        fields={
            "type": "object",
            "properties": {
                "topic": {"type": "string", "enum": ["billing", "new_order", "other"]},
                "transferred": {"type": "boolean"},
            },
        }
    )
    call = _call(
        [("user", "I want to place an order for a coffee grinder please")],
        [ToolUse("create_order", {"item": "coffee grinder"}, {"ok": True})],
    )
    assert (await LocalAnalyzer().analyze(call, enum_only))["fields"] == {
        "topic": "new_order",
        "transferred": False,
    }


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("analysis: {fields: {type: array}}", "type: object"),
        ("analysis: {fields: {type: object, properties: {x: {type: nonsense}}}}", "JSON Schema"),
        (
            "analysis: {success: ok, fields: {type: object, properties: {ok: {type: string}}}}",
            "boolean field",
        ),
        ("analysis: {summary: true, colour: red}", "colour"),
    ],
)
def test_bad_analysis_sections_are_refused_with_a_line(section: str, message: str) -> None:
    text = f"name: demo\ninstructions: Be brief.\n{section}\n"
    with pytest.raises(FlowFileError) as info:
        parse_flow(text, "demo.yaml")
    (line, what), *_ = info.value.errors
    assert line == 3 and message in what, info.value.errors
