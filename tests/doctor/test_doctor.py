"""``switchboard doctor`` against real servers: the offline stack (server, media listener,
local engine for a real Realtime handshake, the simulator's fake Twilio REST API) passes;
each misconfiguration is reported as FAIL with what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.doctor import CHECKS, Finding, Status, diagnose, render
from app.settings import Settings
from tests.e2e.conftest import Stack, make_stack  # noqa: F401  (the e2e fixture)
from tests.helpers import free_port


def _values(stack: Stack, **changes: Any) -> dict[str, Any]:
    values = {name: getattr(stack.settings, name) for name in Settings.model_fields}
    values.update(changes)
    return values


def _by_check(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.check, []).append(f)
    return out


def _failed(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check and f.status is Status.fail]


@pytest.fixture
async def stack(make_stack: Any) -> Stack:  # noqa: F811
    result: Stack = await make_stack()
    return result


async def test_a_working_setup_passes_every_check(stack: Stack) -> None:
    findings = await diagnose(_values(stack))
    assert [f for f in findings if f.status is Status.fail] == [], render(findings)
    checks = _by_check(findings)
    assert set(checks) == set(CHECKS)
    assert any("session.created" in f.detail for f in checks["realtime"])  # a real handshake
    assert any("is active" in f.detail for f in checks["twilio"])  # the account was fetched
    assert any("signed callbacks are accepted" in f.detail for f in checks["public-url"])
    assert any("accepts a signed upgrade" in f.detail for f in checks["public-url"])
    # The shared test Redis runs without persistence: outside production that is a warning.
    assert any(f.status is Status.warn and "persistence" in f.detail for f in checks["redis"])
    assert "problem(s)" in render(findings) or "all checks passed" in render(findings)


async def test_each_misconfiguration_is_reported_with_a_fix(stack: Stack) -> None:
    nothing = free_port()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"redis_url": f"redis://127.0.0.1:{nothing}/0"}, "redis", "SWITCHBOARD_REDIS_URL"),
        ({"redis_url": "memcached://127.0.0.1:11211"}, "redis", "SWITCHBOARD_REDIS_URL"),
        (
            {"realtime_url": f"ws://127.0.0.1:{nothing}/v1/realtime?model=gpt-realtime"},
            "realtime",
            "SWITCHBOARD_REALTIME_URL",
        ),
        ({"public_base_url": f"http://127.0.0.1:{nothing}"}, "public-url", "switchboard serve"),
        ({"twilio_api_base_url": f"http://127.0.0.1:{nothing}"}, "twilio", "simulator"),
    ]
    for changes, check, hint in cases:
        findings = await diagnose(_values(stack, **changes))
        failed = _failed(findings, check)
        assert failed, (changes, render(findings))
        assert any(hint in f.fix for f in failed), render(failed)
        others = [f for f in findings if f.status is Status.fail and f.check != check]
        # One wrong setting is one problem (the public URL check needs the others working).
        assert others == [], (changes, render(others))


async def test_a_wrong_auth_token_fails_the_account_fetch_and_the_signatures(
    stack: Stack,
) -> None:
    findings = await diagnose(_values(stack, twilio_auth_token="another-token-entirely"))
    twilio = _failed(findings, "twilio")
    assert twilio and "Auth Token" in twilio[0].fix
    public = _failed(findings, "public-url")
    assert public and "signature mismatch" in public[0].detail
    assert "SWITCHBOARD_TWILIO_AUTH_TOKEN" in public[0].fix


async def test_production_refuses_placeholders_one_finding_each() -> None:
    findings = await diagnose(
        {
            "env": "production",
            "public_base_url": "http://127.0.0.1:8000",
            "twilio_account_sid": "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "twilio_auth_token": "change-me",
            "realtime_api_key": "sk-change-me",
        }
    )
    failed = _failed(findings, "settings")
    problems = " | ".join(f.detail for f in failed)
    for name in ("PUBLIC_BASE_URL", "TWILIO_AUTH_TOKEN", "REALTIME_API_KEY", "ACCOUNT_SID"):
        assert name in problems, problems
    assert all(f.fix and "SWITCHBOARD_" in f.fix for f in failed)
    assert {f.check for f in findings if f.status is Status.skip} == set(CHECKS[1:])


def test_the_command_prints_each_problem_with_its_fix_and_exits_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nothing = free_port()
    monkeypatch.setenv("SWITCHBOARD_ENV", "dev")
    monkeypatch.setenv("SWITCHBOARD_REDIS_URL", f"redis://127.0.0.1:{nothing}/0")
    result = CliRunner().invoke(
        cli, ["doctor", "--skip", "realtime", "--skip", "twilio", "--skip", "public-url"]
    )
    assert result.exit_code == 1, result.output
    assert "FAIL  redis" in result.output and "fix: start Redis" in result.output
    assert "realtime" not in result.output
    result = CliRunner().invoke(cli, ["doctor", "--skip", "nonsense"])
    assert result.exit_code == 2 and "unknown check" in result.output
