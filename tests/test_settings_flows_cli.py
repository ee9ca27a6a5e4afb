"""Settings refuse unsafe defaults; flows fail with line numbers; numbers are masked; the
CLI documents every command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.errors import ConfigError, FlowFileError
from app.phone import mask, normalize
from app.realtime.dialect import endpoint
from app.settings import RealtimeDialect, Settings
from flows import FlowCatalog, parse_flow


def test_dev_runs_offline_on_the_local_engine() -> None:
    s = Settings(_env_file=None, env="dev")  # type: ignore[call-arg]
    ep = endpoint(s)
    assert ep.url.startswith(f"ws://127.0.0.1:{s.engine_port}/v1/realtime") and not ep.beta
    assert s.twilio_rest_base_url == f"http://127.0.0.1:{s.simulator_port}"


def test_groups_read_the_flat_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_MEDIA_PUBLIC_URL", "wss://media.example.com/twilio/media")
    monkeypatch.setenv("SWITCHBOARD_REALTIME_RECONNECT_BACKOFF_MS", "[0, 50]")
    monkeypatch.setenv("SWITCHBOARD_DIALER_ENABLED", "false")
    monkeypatch.setenv("SWITCHBOARD_MEDIA_PORT", "9001")
    settings = Settings(_env_file=None, media_port=9002)  # type: ignore[call-arg]
    assert settings.media.public_url == "wss://media.example.com/twilio/media"
    assert settings.media.port == 9002
    assert settings.realtime.reconnect_backoff_ms == [0, 50]
    assert settings.dialer.enabled is False
    with pytest.raises(ValueError, match=r"dialer\.account_cps"):
        Settings(_env_file=None, dialer_account_cps=0)  # type: ignore[call-arg]


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValueError) as err:
        Settings(_env_file=None, env="production")  # type: ignore[call-arg]
    text = str(err.value)
    for name in ("TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL", "REALTIME_API_KEY", "ACCOUNT_SID"):
        assert name in text


TOKEN = "0123456789abcdef0123456789abcdef"  # Twilio auth tokens are 32 hex digits
API_KEY = "sk-secret-value-" + "x" * 32


def test_production_with_real_settings_starts_and_hides_secrets() -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        public_base_url="https://voice.example.com",
        twilio_account_sid="AC" + "a" * 32,
        twilio_auth_token=TOKEN,
        realtime_api_key=API_KEY,
    )
    assert s.media_stream_url == "wss://voice.example.com/twilio/media"
    assert API_KEY not in repr(s) and TOKEN not in repr(s)
    ep = endpoint(s)
    assert ep.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert ep.headers == {"Authorization": f"Bearer {API_KEY}"}
    assert "sk-secret" not in ep.redacted_url()


def test_signature_validation_can_be_disabled_only_in_dev() -> None:
    Settings(_env_file=None, env="dev", validate_signatures=False)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="VALIDATE_SIGNATURES"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, env="test", validate_signatures=False, twilio_auth_token="t-123"
        )


AZURE_GA_URL = "wss://res.openai.azure.com/openai/v1/realtime?model=dep"
AZURE_BETA_URL = (
    "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep"
)


@pytest.mark.parametrize(
    "dialect, url, beta, header",
    [
        (RealtimeDialect.openai_beta, AZURE_GA_URL, True, "OpenAI-Beta"),
        (RealtimeDialect.azure_ga, AZURE_GA_URL, False, "api-key"),
        (RealtimeDialect.azure_beta, AZURE_BETA_URL, True, "api-key"),
    ],
)
def test_dialect_endpoints(dialect: RealtimeDialect, url: str, beta: bool, header: str) -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None, realtime_dialect=dialect, realtime_api_key="k", realtime_url=url
    )
    ep = endpoint(s)
    assert ep.beta is beta and header in ep.headers
    assert ep.url == url


@pytest.mark.parametrize(
    "dialect, url, missing",
    [
        (RealtimeDialect.azure_ga, None, "must name the Azure resource"),
        (RealtimeDialect.azure_ga, "wss://res.openai.azure.com/openai/v1/realtime", "model"),
        (RealtimeDialect.azure_beta, AZURE_GA_URL, "api-version, deployment"),
        (
            RealtimeDialect.azure_beta,
            "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview",
            "lacks deployment",
        ),
    ],
)
def test_azure_urls_must_name_the_deployment(
    dialect: RealtimeDialect, url: str | None, missing: str
) -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None, realtime_dialect=dialect, realtime_api_key="k", realtime_url=url
    )
    with pytest.raises(ConfigError, match=missing):
        endpoint(s)


def test_flow_errors_carry_line_numbers() -> None:
    text = "name: demo\ninstructions: hi\nvad:\n  threshold: 7\nvoice: alloy\ntypo_key: 1\n"
    with pytest.raises(FlowFileError) as err:
        parse_flow(text, "demo.yaml")
    lines = {ln for ln, _ in err.value.errors}
    assert 4 in lines  # vad.threshold out of range
    assert 6 in lines  # unknown key
    with pytest.raises(FlowFileError) as err:
        parse_flow("name: x\ninstructions: [unclosed\n", "bad.yaml")
    assert err.value.errors[0][0] == 3  # where the parser found the unclosed sequence


def test_routing_by_number_then_default(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: sales\nnumbers: ['+15550101111']\ninstructions: sell\n")
    (tmp_path / "b.yaml").write_text("name: support\ndefault: true\ninstructions: help\n")
    catalog = FlowCatalog.load(tmp_path)
    flow, decision = catalog.route("+15550101111")
    assert (flow.name, decision.reason) == ("sales", "number_match")
    flow, decision = catalog.route("+15550102222")
    assert (flow.name, decision.reason) == ("support", "default")


def test_phone_numbers_normalise_and_mask() -> None:
    assert normalize("(555) 010-0000") == "+15550100000"
    assert normalize("0044 20 7946 0958") == "+442079460958"
    with pytest.raises(ValueError):
        normalize("12")
    assert mask("+15555550123") == "+155****0123"
    assert mask("12345") == "*****" and mask(None) == ""


@pytest.mark.parametrize("command", ["serve", "migrate", "seed-demo", "engine", "call"])
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and len(result.output.splitlines()) > 5


def test_call_reports_a_missing_recording_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["call", "--wav", str(tmp_path / "nope.wav")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_call_refuses_an_unknown_target_rule() -> None:
    result = CliRunner().invoke(cli, ["call", "--target", "+15550109999=maybe"])
    assert result.exit_code == 2
    assert "NUMBER=answer|no-answer|busy|decline" in result.output
