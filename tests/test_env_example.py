"""The root .env.example lists every setting (scripts/env_example.py writes it from
app/settings.py), and its going-live block is refused in production until filled in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings, variable_names

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_is_current_and_complete() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/env_example.py", "--check"], cwd=ROOT, capture_output=True
    )
    assert check.returncode == 0, check.stderr.decode()
    text = (ROOT / ".env.example").read_text()
    names = variable_names()
    assert "SWITCHBOARD_MEDIA_PORT" in names and "SWITCHBOARD_MEDIA" not in names
    for name in names:
        assert f"{name}=" in text, name


def test_its_placeholders_are_refused_in_production() -> None:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("SWITCHBOARD_"):
            name, _, value = line.partition("=")
            values[name.removeprefix("SWITCHBOARD_").lower()] = value
    assert values["env"] == "production"
    with pytest.raises(ValueError) as refused:
        Settings(**values)
    for name in ("TWILIO_AUTH_TOKEN", "REALTIME_API_KEY", "TWILIO_ACCOUNT_SID"):
        assert name in str(refused.value)
