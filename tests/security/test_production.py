"""Production refuses weak settings and keeps the schema and metrics to itself."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import PROJECT_ROOT, Settings
from tests.admin.conftest import AdminFactory, AdminStack
from tests.e2e.conftest import ACCOUNT_SID

EXAMPLE = PROJECT_ROOT / "deploy" / "switchboard.env.example"
TOKEN = "0123456789abcdef0123456789abcdef"
API_KEY = "sk-proj-" + "k" * 40
GOOD: dict[str, Any] = {
    "env": "production",
    "public_base_url": "https://voice.example.com",
    "twilio_account_sid": "AC" + "0123456789abcdef" * 2,
    "twilio_auth_token": TOKEN,
    "realtime_api_key": API_KEY,
}


def _example() -> dict[str, str]:
    values = {}
    for line in Path(EXAMPLE).read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.removeprefix("SWITCHBOARD_").lower()] = value
    return values


def test_the_shipped_example_does_not_start() -> None:
    with pytest.raises(ValueError) as err:
        Settings(_env_file=None, **_example())  # type: ignore[call-arg]
    for name in ("TWILIO_AUTH_TOKEN", "REALTIME_API_KEY", "TWILIO_ACCOUNT_SID"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("twilio_auth_token", "change-me", "TWILIO_AUTH_TOKEN"),
        ("twilio_auth_token", "CHANGE-ME ", "TWILIO_AUTH_TOKEN"),
        ("twilio_auth_token", "dev-twilio-auth-token", "TWILIO_AUTH_TOKEN"),
        ("twilio_auth_token", "short-but-real-1234", "TWILIO_AUTH_TOKEN"),
        ("realtime_api_key", "sk-change-me", "REALTIME_API_KEY"),
        ("realtime_api_key", "sk-change-me-" + "x" * 40, "REALTIME_API_KEY"),
        ("realtime_api_key", "", "REALTIME_API_KEY"),
        ("twilio_account_sid", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "TWILIO_ACCOUNT_SID"),
        ("public_base_url", "http://voice.example.com", "PUBLIC_BASE_URL"),
        ("validate_signatures", False, "VALIDATE_SIGNATURES"),
        ("validate_ws_signature", False, "VALIDATE_WS_SIGNATURE"),
    ],
)
def test_production_refuses_each_weak_setting(field: str, value: Any, named: str) -> None:
    Settings(_env_file=None, **GOOD)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=named):
        Settings(_env_file=None, **{**GOOD, field: value})  # type: ignore[call-arg]


def test_ws_signature_may_be_off_only_in_dev() -> None:
    Settings(_env_file=None, env="dev", validate_ws_signature=False)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="VALIDATE_WS_SIGNATURE"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, env="test", validate_ws_signature=False, twilio_auth_token="t" * 40
        )


def test_list_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_TRANSFER_ALLOWED_NUMBERS", "+1555010????, +44*")
    monkeypatch.setenv("SWITCHBOARD_TRUSTED_PROXIES", '["127.0.0.1", "10.0.0.0/8"]')
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.transfer_allowed_numbers == ["+1555010????", "+44*"]
    assert s.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    for name, bad in (("TRANSFER_ALLOWED_NUMBERS", "1555*"), ("TRUSTED_PROXIES", "proxy.local")):
        monkeypatch.setenv(f"SWITCHBOARD_{name}", bad)
        with pytest.raises(ValueError):
            Settings(_env_file=None)  # type: ignore[call-arg]
        monkeypatch.delenv(f"SWITCHBOARD_{name}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _production(make_admin: AdminFactory, **over: Any) -> AdminStack:
    values = {**GOOD, "twilio_account_sid": ACCOUNT_SID, **over}
    admin: AdminStack = await make_admin(**values)
    return admin


async def test_production_keeps_docs_and_metrics_to_itself(make_admin: AdminFactory) -> None:
    port = _free_port()
    admin = await _production(make_admin, metrics_port=port)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await admin.http.get(path)).status_code == 404, path
    assert (await admin.http.get("/metrics")).status_code == 401
    r = await admin.http.get("/metrics", headers=admin.read)
    assert r.status_code == 200 and "switchboard_" in r.text
    assert (await admin.http.get("/admin/openapi.json")).status_code == 401
    r = await admin.http.get("/admin/openapi.json", headers=admin.read)
    assert r.status_code == 200 and "/admin/calls" in r.json()["paths"]
    # The scraper's own listener (loopback): no key needed there.
    async with httpx.AsyncClient(timeout=5) as http:
        r = await asyncio.wait_for(http.get(f"http://127.0.0.1:{port}/"), 5)
    assert r.status_code == 200 and "switchboard_" in r.text


async def test_settings_can_open_them_explicitly(make_admin: AdminFactory) -> None:
    admin = await _production(make_admin, docs_enabled=True, metrics_public=True)
    assert (await admin.http.get("/openapi.json")).status_code == 200
    assert (await admin.http.get("/metrics")).status_code == 200
