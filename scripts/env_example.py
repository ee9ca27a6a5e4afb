"""Write .env.example from app/settings.py: every setting, grouped as the Settings class
groups them, with its explanation (the ``#:`` comments) and its default.

    python scripts/env_example.py          # rewrite .env.example
    python scripts/env_example.py --check  # exit 1 when it is out of date (tests do this)

The settings a deployment must set come first, uncommented, with placeholders that
production refuses until they are replaced; every other line is commented out at its
default.
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "app" / "settings.py"
TARGET = ROOT / ".env.example"

HEADER = """\
# Switchboard settings: copy to .env (or put them in the environment) and fill in.
# Every variable is prefixed SWITCHBOARD_; `switchboard doctor` checks them.
# Written by `python scripts/env_example.py` from app/settings.py: do not edit by hand.
#
# The first block is what going live needs (README "Going live"). The values there are
# placeholders: with SWITCHBOARD_ENV=production the service refuses to start until they
# are real (secrets at least 32 characters, an https public URL). Every other setting is
# commented out at its default.
"""

#: name → (value, note): the settings a deployment sets, in this order.
REQUIRED: dict[str, tuple[str, str]] = {
    "env": ("production", "dev (defaults, simulator), test, or production (refuses unsafe values)"),
    "public_base_url": (
        "https://voice.example.com",
        "the https URL Twilio reaches (your domain, or a tunnel's URL for a trial)",
    ),
    "twilio_account_sid": ("ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "Twilio console, Account Info"),
    "twilio_auth_token": ("change-me", "Twilio console, Account Info (Auth Token)"),
    "realtime_dialect": ("openai-ga", "openai-ga, openai-beta, azure-ga or azure-beta"),
    "realtime_api_key": ("sk-change-me", "OpenAI API key, or the Azure resource's key"),
    "redis_url": (
        "redis://127.0.0.1:6379/0",
        "redis://, rediss://, redis+sentinel://HOST:26379/MASTER/0, redis+cluster://HOST:6379",
    ),
    "trusted_proxies": ("127.0.0.1", "the TLS proxy in front (its X-Forwarded-For is believed)"),
}

#: Explanations of settings app/settings.py leaves without a ``#:`` comment.
NOTES: dict[str, str] = {
    "log_level": "log level: DEBUG, INFO, WARNING, ERROR",
    "log_json": "one JSON object per log line (false: plain text)",
    "host": "bind address of the HTTP port (0.0.0.0 in a container)",
    "port": "the HTTP port: Twilio webhooks, admin API, /healthz, /readyz, /metrics",
    "realtime_model": "OpenAI Realtime model",
    "realtime_connect_timeout_ms": "how long opening the Realtime WebSocket may take",
    "azure_api_version": "Azure OpenAI API version (the beta dialect)",
    "azure_deployment": "Azure deployment name (when REALTIME_URL does not name it)",
    "engine_host": "the local engine's address (offline: no Realtime API key)",
    "engine_port": "the local engine's port",
    "retention_days": "days every per-call key (record, transcript, tools) is kept",
    "flows_dir": "directory of the flow YAML files (default: the packaged flows/)",
    "tool_timeout_ms": "default deadline of one tool call (flows may set their own)",
    "metrics_host": "bind address of the METRICS_PORT listener",
}

_FIELD = re.compile(r"^    ([a-z_][a-z0-9_]*)\s*:\s*[^=]+?(?:=.*)?$")
_SECTION = re.compile(r"^    # --- (.+?) -+\s*$")


def _render(value: Any) -> str:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, Path):
        try:
            return str(value.relative_to(ROOT))
        except ValueError:
            return str(value)
    return str(getattr(value, "value", value))


@lru_cache(maxsize=1)
def _settings() -> tuple[Any, dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    from app.settings import GROUPS, Settings

    return Settings, GROUPS


def _default(name: str) -> str:
    """The default of setting ``name`` (a variable name without the prefix, lower case:
    ``retention_days``, or a group's ``media_port``)."""
    settings, groups = _settings()
    model, key = settings, name
    group, _, rest = name.partition("_")
    if group in groups and rest in groups[group].model_fields:
        model, key = groups[group], rest
    field = model.model_fields[key]
    if field.default_factory is not None:
        return _render(field.default_factory())
    return _render(field.default)


def _documented(cls: str) -> list[tuple[str, list[str], str | None]]:
    """The body of ``class <cls>`` in app/settings.py up to its first method: (field name,
    its ``#:`` lines, the section heading it opens, if any) per field."""
    out: list[tuple[str, list[str], str | None]] = []
    inside, doc, section = False, [], None
    for raw in SETTINGS.read_text(encoding="utf-8").splitlines():
        if raw.startswith(f"class {cls}("):
            inside = True
            continue
        if not inside:
            continue
        if raw.startswith("    @") or raw.startswith("    def ") or raw.startswith("class "):
            break
        heading = _SECTION.match(raw)
        if heading:
            section, doc = heading.group(1), []
            continue
        stripped = raw.strip()
        if stripped.startswith("#:"):
            doc.append(stripped[2:].strip())
            continue
        field = _FIELD.match(raw)
        if field:
            out.append((field.group(1), doc, section))
            section = None
        if not stripped.startswith("#"):
            doc = []
    return out


def _variables() -> list[tuple[str, list[str], str | None]]:
    """Every setting's variable name (lower case, no prefix) with its explanation and the
    section it opens, in the order of the Settings class; a group field is replaced by
    its model's fields (``media`` → ``media_host``, ``media_port``, ...)."""
    settings, groups = _settings()
    out: list[tuple[str, list[str], str | None]] = []
    for name, doc, section in _documented("Settings"):
        if name in groups:
            for i, (sub, sub_doc, _) in enumerate(_documented(groups[name].__name__)):
                out.append((f"{name}_{sub}", sub_doc, section if i == 0 else None))
        elif name in settings.model_fields:
            out.append((name, doc, section))
    return out


def build() -> str:
    """The text of .env.example."""
    lines = [*HEADER.rstrip("\n").split("\n"), "", "# --- Going live " + "-" * 70]
    for name, (value, note) in REQUIRED.items():
        lines += [f"# {note}", f"SWITCHBOARD_{name.upper()}={value}"]
    seen = set(REQUIRED)
    for name, doc, section in _variables():
        if section is not None:
            lines += ["", f"# --- {section} ".ljust(87, "-")]
        if name in seen:
            continue
        seen.add(name)
        lines += [f"# {d}" if d else "#" for d in doc]
        if not doc and name in NOTES:
            lines.append(f"# {NOTES[name]}")
        lines.append(f"#SWITCHBOARD_{name.upper()}={_default(name)}")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args()
    text = build()
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(".env.example is out of date: run python scripts/env_example.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
