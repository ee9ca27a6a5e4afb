"""The admin API's contract for client generators: one page shape for every listing, named
operations, an error body with a stable code, only the API in the public schema, keys
managed over the API (shown once), and the docs pages served from this host."""

from __future__ import annotations

import re
from typing import Any

from app.api.errors import DEFAULT_CODES
from tests.admin.conftest import AdminStack

#: Every GET that lists things, with path parameters filled in.
LISTINGS = [
    "/admin/calls",
    "/admin/live",
    "/admin/flows",
    "/admin/dnc",
    "/admin/audit",
    "/admin/keys",
    "/admin/campaigns",
]


def _schema(admin: AdminStack) -> dict[str, Any]:
    spec: dict[str, Any] = admin.stack.app.openapi()
    return spec


async def test_every_listing_has_one_shape_and_pages_by_cursor(admin: AdminStack) -> None:
    spec = _schema(admin)
    list_paths = []
    for path, ops in spec["paths"].items():
        get = ops.get("get")
        if not get:
            continue
        ref = (
            get["responses"]["200"]
            .get("content", {})
            .get("application/json", {})
            .get("schema", {})
            .get("$ref", "")
        )
        name = ref.rsplit("/", 1)[-1]
        if name.endswith("Page"):
            list_paths.append(path)
            props = spec["components"]["schemas"][name]["properties"]
            assert set(props) == {"items", "next_cursor"}, (path, sorted(props))
            params = {p["name"] for p in get.get("parameters", [])}
            if get["operationId"] not in ("list_live_calls", "list_flows"):
                assert {"cursor", "limit"} <= params, path
        else:  # nothing else answers a bare array
            schema = get["responses"]["200"].get("content", {}).get("application/json", {})
            assert schema.get("schema", {}).get("type") != "array", path
    assert set(LISTINGS) <= set(list_paths)
    for path in LISTINGS:
        r = await admin.http.get(path, headers=admin.write)
        assert r.status_code == 200, (path, r.text)
        assert set(r.json()) == {"items", "next_cursor"}, path


async def test_operation_ids_are_names_people_call(admin: AdminStack) -> None:
    ids = [op["operationId"] for ops in _schema(admin)["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in ids), ids
    assert {
        "list_calls",
        "get_call",
        "list_live_calls",
        "hangup_call",
        "list_flows",
        "reload_flows",
        "list_dnc_entries",
        "list_keys",
        "create_key",
        "revoke_key",
        "list_campaigns",
        "list_contacts",
    } <= set(ids)


async def test_html_and_carrier_routes_are_not_in_the_public_schema(admin: AdminStack) -> None:
    paths = list(_schema(admin)["paths"])
    assert not [p for p in paths if p.startswith(("/twilio", "/admin/ui", "/docs", "/redoc"))]
    # …and still work.
    r = await admin.http.get("/admin/ui/login")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]


async def test_every_error_has_a_stable_code(admin: AdminStack) -> None:
    spec = _schema(admin)
    documented = spec["components"]["schemas"]["ErrorBody"]
    assert set(documented["required"]) == {"detail", "code"}

    async def check(method: str, path: str, status: int, code: str, **kw: Any) -> None:
        r = await admin.http.request(method, path, **kw)
        assert r.status_code == status, (path, r.text)
        body = r.json()
        assert body["code"] == code and body["detail"], body

    await check("GET", "/admin/calls", 401, "unauthorized")
    await check("GET", "/admin/calls/CA" + "0" * 32, 404, "not_found", headers=admin.read)
    await check("GET", "/admin/nothing-here", 404, "not_found", headers=admin.read)
    await check("POST", "/admin/flows/reload", 403, "scope_missing", headers=admin.read)
    await check("GET", "/admin/calls?limit=0", 422, "validation_error", headers=admin.read)
    await check("GET", "/admin/calls?cursor=zzz", 422, "invalid_cursor", headers=admin.read)
    await check("GET", "/admin/dnc?cursor=zzz", 422, "invalid_cursor", headers=admin.read)
    await check(
        "POST", "/admin/calls/CA" + "0" * 32 + "/hangup", 404, "call_not_live", headers=admin.write
    )
    await check(
        "POST",
        "/admin/dnc",
        413,
        "body_too_large",
        headers={**admin.write, "Content-Type": "application/json"},
        content=b"{" + b" " * (admin.stack.settings.max_body_bytes + 10) + b"}",
    )
    assert set(DEFAULT_CODES.values()) >= {"unauthorized", "not_found", "conflict"}


async def test_keys_are_managed_over_the_api_and_shown_once(admin: AdminStack) -> None:
    r = await admin.http.post(
        "/admin/keys", headers=admin.write, json={"name": "crm sync", "scope": "read"}
    )
    assert r.status_code == 201, r.text
    created = r.json()
    secret, key_id = created["secret"], created["key"]["key_id"]
    assert secret.startswith(f"sbk_{key_id}_") and created["key"]["active"]
    new = {"Authorization": f"Bearer {secret}"}
    me = (await admin.http.get("/admin/keys/me", headers=new)).json()
    assert me["key_id"] == key_id and me["scope"] == "read"

    # Listing needs a write key and never shows a secret.
    assert (await admin.http.get("/admin/keys", headers=admin.read)).status_code == 403
    r = await admin.http.post("/admin/keys", headers=new, json={"name": "escalate"})
    assert r.status_code == 403
    listed = (await admin.http.get("/admin/keys", headers=admin.write)).json()
    assert listed["items"][0]["key_id"] == key_id  # newest first
    assert secret.split("_", 2)[2] not in str(listed) and "secret" not in str(listed)
    page = (await admin.http.get("/admin/keys", headers=admin.write, params={"limit": 1})).json()
    rest = await admin.http.get(
        "/admin/keys", headers=admin.write, params={"cursor": page["next_cursor"]}
    )
    ids = [k["key_id"] for k in page["items"] + rest.json()["items"]]
    assert len(ids) == len(set(ids)) == len(listed["items"]) == 3

    bad = await admin.http.post("/admin/keys", headers=admin.write, json={"name": "x\ny"})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"

    r = await admin.http.delete(f"/admin/keys/{key_id}", headers=admin.write)
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["revoked_at_ms"]
    assert (await admin.http.get("/admin/keys/me", headers=new)).status_code == 401
    again = await admin.http.delete(f"/admin/keys/{key_id}", headers=admin.write)
    assert again.status_code == 200  # idempotent
    r = await admin.http.delete("/admin/keys/000000000000", headers=admin.write)
    assert r.status_code == 404 and r.json()["code"] == "not_found"

    # Each write is one audit entry, with who did it and how.
    audit = (await admin.http.get("/admin/audit", headers=admin.read)).json()["items"]
    mine = [e for e in audit if key_id in (e["target"], e["detail"].get("key_id"))]
    assert sorted(e["action"] for e in mine) == ["key.create", "key.revoke", "key.revoke"]
    create = next(e for e in mine if e["action"] == "key.create")
    assert create["actor"].startswith("test operator") and create["via"] == "header"
    assert create["status"] == 201 and create["detail"]["scope"] == "read"
    assert secret not in str(audit)


async def test_docs_pages_load_nothing_from_elsewhere(admin: AdminStack) -> None:
    for page in ("/docs", "/redoc"):
        r = await admin.http.get(page)
        assert r.status_code == 200
        assert "script-src 'self'" in r.headers["content-security-policy"]
        refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert refs and all(ref.startswith("/") for ref in refs), refs
        assert "<script>" not in r.text  # no inline script
        for ref in refs:
            asset = await admin.http.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 100, ref
    r = await admin.http.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in r.content
