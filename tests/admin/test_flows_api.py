"""``/admin/flows``: list, validate with line numbers, reload all-or-nothing on every instance."""

from __future__ import annotations

import shutil
from pathlib import Path

from flows import FLOWS_DIR
from tests.admin.conftest import AdminFactory, AdminStack, eventually

SALES = """\
name: sales
description: Sales line
direction: inbound
numbers: ["+15550102000"]
instructions: Help the caller buy things.
tools: [lookup_customer, create_order]
transfer_targets:
  human: "+15550109999"
"""


def flows_copy(tmp_path: Path) -> Path:
    d = tmp_path / "flows"
    d.mkdir()
    shutil.copy(FLOWS_DIR / "support.yaml", d / "support.yaml")
    return d


async def test_list_and_show(admin: AdminStack) -> None:
    r = await admin.http.get("/admin/flows", headers=admin.read)
    assert r.status_code == 200
    body = r.json()
    assert [f["name"] for f in body["items"] if f["default"]] == ["support"]
    assert body["next_cursor"] is None
    support = next(f for f in body["items"] if f["name"] == "support")
    assert support["transfer_targets"] == ["human", "sales"] and "end_call" in support["tools"]
    r = await admin.http.get("/admin/flows/support", headers=admin.read)
    assert r.json()["greeting"].startswith("Thanks for calling Acme")
    r = await admin.http.get("/admin/flows/nope", headers=admin.read)
    assert r.status_code == 404


async def test_validate_reports_lines(admin: AdminStack) -> None:
    r = await admin.http.post("/admin/flows/validate", headers=admin.read, json={"yaml": SALES})
    assert r.json()["valid"] is True and r.json()["flow"]["name"] == "sales"

    bad = SALES.replace("direction: inbound", "direction: sideways").replace(
        "create_order]", "create_order, launch_rockets]"
    )
    r = await admin.http.post("/admin/flows/validate", headers=admin.read, json={"yaml": bad})
    body = r.json()
    assert body["valid"] is False and body["flow"] is None
    assert [(e["line"], e["message"].split(":")[0]) for e in body["errors"]] == [(3, "direction")]
    r = await admin.http.post(
        "/admin/flows/validate",
        headers=admin.read,
        json={"yaml": SALES.replace("create_order]", "create_order, launch_rockets]")},
    )
    (err,) = r.json()["errors"]
    assert err["line"] == 6 and "launch_rockets" in err["message"]
    r = await admin.http.post(
        "/admin/flows/validate", headers=admin.read, json={"yaml": "name: [unclosed\n"}
    )
    (err,) = r.json()["errors"]
    assert err["line"] == 2 and r.json()["valid"] is False


async def test_reload_adds_flows_and_never_takes_a_bad_one(
    make_admin: AdminFactory, tmp_path: Path
) -> None:
    flows_dir = flows_copy(tmp_path)
    a: AdminStack = await make_admin(flows_dir=flows_dir)
    b: AdminStack = await make_admin(flows_dir=flows_dir)
    (flows_dir / "sales.yaml").write_text(SALES)
    r = await a.http.post("/admin/flows/reload", headers=a.write)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] and body["added"] == ["sales"] and body["flows"] == ["sales", "support"]
    assert body["notified_instances"] == 1
    assert a.stack.services.flows.route("+15550102000")[0].name == "sales"
    # Instance B reloads on the broadcast.
    await eventually(lambda: "sales" in b.stack.services.flows.flows, timeout_s=5)

    # A broken edit: rejected, both flows stay exactly as they were.
    (flows_dir / "sales.yaml").write_text(SALES.replace("instructions:", "instructionz:"))
    (flows_dir / "extra.yaml").write_text("name: extra\ninstructions: hi\ndefault: true\n")
    before = a.stack.services.flows
    r = await a.http.post("/admin/flows/reload", headers=a.write)
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False and body["flows"] == ["sales", "support"]
    files = {(p["file"], p["line"]) for p in body["problems"]}
    assert ("sales.yaml", 5) in files
    assert a.stack.services.flows is before
    assert b.stack.services.flows.flows["sales"].instructions == "Help the caller buy things."

    # Two defaults is a catalog error, reported without touching the running flows.
    (flows_dir / "sales.yaml").write_text(SALES)
    r = await a.http.post("/admin/flows/reload", headers=a.write)
    assert r.status_code == 422 and "more than one default" in r.text
    assert a.stack.services.flows is before
    (flows_dir / "extra.yaml").unlink()
    r = await a.http.post("/admin/flows/reload", headers=a.write)
    assert r.status_code == 200 and r.json()["changed"] == []
