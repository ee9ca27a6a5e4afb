"""A client generated from the running server's /openapi.json by openapi-python-client
drives the API: it pages through the calls by cursor, reads one, creates and revokes a
key, and gets typed errors with their code.

The generator pins typer below what Switchboard needs, so it lives in a venv of its own
(``.venv-codegen``, from ``requirements/codegen.lock``, made by ``scripts/setup.sh``);
the generated client runs there too (it needs only httpx, attrs and python-dateutil).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.admin.conftest import AdminStack
from tests.admin.test_calls_api import seed

ROOT = Path(__file__).resolve().parents[2]
CODEGEN = ROOT / ".venv-codegen" / "bin"

SCRIPT = """
import json, sys
from switchboard_client import AuthenticatedClient
from switchboard_client.api.admin_calls import list_calls, get_call
from switchboard_client.api.admin_keys import create_key, revoke_key, get_current_key
from switchboard_client.models import CallDirection, CallPage, ErrorBody, KeyCreate
from switchboard_client.models.key_create_scope import KeyCreateScope

base, key = sys.argv[1], sys.argv[2]
out = {}
with AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True) as client:
    pages, cursor = [], None
    while True:
        page = list_calls.sync(client=client, limit=7, cursor=cursor,
                               direction=CallDirection.INBOUND)
        assert isinstance(page, CallPage), page
        pages.append([c.call_sid for c in page.items])
        cursor = page.next_cursor
        if not cursor:
            break
    out["pages"] = pages
    detail = get_call.sync(client=client, call_sid=pages[0][0])
    out["detail"] = [detail.call.call_sid, detail.call.flow, detail.call.from_masked]
    missing = get_call.sync(client=client, call_sid="CA" + "f" * 32)
    assert isinstance(missing, ErrorBody), missing
    out["missing"] = [missing.code, missing.detail]
    body = KeyCreate(name="generated", scope=KeyCreateScope.READ)
    made = create_key.sync(client=client, body=body)
    out["made"] = [made.key.key_id, made.key.scope.value, made.secret.startswith("sbk_")]
    with AuthenticatedClient(base_url=base, token=made.secret) as reader:
        out["me"] = get_current_key.sync(client=reader).name
    out["revoked"] = revoke_key.sync(client=client, key_id=made.key.key_id).active
print(json.dumps(out))
"""


async def _run(*args: str, cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": f"{CODEGEN}:/usr/bin:/bin", "HOME": str(cwd)},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    return text


async def test_a_generated_client_lists_calls(admin: AdminStack, tmp_path: Path) -> None:
    assert (CODEGEN / "openapi-python-client").exists(), (
        "openapi-python-client is missing: run `make setup` (scripts/setup.sh makes .venv-codegen)"
    )
    made = await seed(admin.stack.store, n=30)
    schema = (await admin.http.get("/openapi.json")).content
    (tmp_path / "openapi.json").write_bytes(schema)
    (tmp_path / "config.yml").write_text("project_name_override: switchboard-client\n")
    await _run(
        str(CODEGEN / "openapi-python-client"),
        "generate",
        "--path",
        "openapi.json",
        "--config",
        "config.yml",
        "--meta",
        "none",
        "--output-path",
        "switchboard_client",
        cwd=tmp_path,
    )
    (tmp_path / "drive.py").write_text(SCRIPT)
    text = await _run(
        str(CODEGEN / "python"), "drive.py", admin.stack.base_url, admin.write_key, cwd=tmp_path
    )
    result = json.loads(text.strip().splitlines()[-1])

    inbound = sorted(
        (c for c in made if c["direction"] == "inbound"),
        key=lambda c: (c["created_at_ms"], c["call_sid"]),
        reverse=True,
    )
    pages = result["pages"]
    assert [sid for page in pages for sid in page] == [c["call_sid"] for c in inbound]
    assert [len(p) for p in pages] == [7, 7, 1]
    assert result["detail"][0] == inbound[0]["call_sid"]
    assert result["missing"] == ["not_found", "no such call"]
    assert result["made"][1:] == ["read", True]
    assert result["me"] == "generated" and result["revoked"] is False
