"""``switchboard doctor``: checks that the settings work before the first real call.

Each check ends ``OK``, ``WARN`` (works, but not how production should run) or ``FAIL``
(a call would fail), with what was found and, when it is not OK, what to change:

- ``settings``: the settings load (in production: no placeholders, secrets long enough,
  an https public URL, …: ``app.settings``); the Twilio REST API is not a simulator's in
  production; the public URL is not loopback when the env is production.
- ``redis``: the URL parses (one Redis, Sentinel or Cluster: ``app.store.redis``), every
  node answers ``PING``, Redis is 7 or newer on a Cluster (sharded pub/sub), persistence
  is on (AOF or RDB snapshots: transcripts, call records and campaigns live only in
  Redis), and the migrations are applied.
- ``realtime``: a real WebSocket handshake with the configured dialect (URL, headers:
  ``app.realtime.dialect``) answered by ``session.created``.
- ``twilio``: the account SID and auth token fetch the account
  (``GET /2010-04-01/Accounts/{AccountSid}.json``), which must be active.
- ``public-url``: ``PUBLIC_BASE_URL/healthz`` reaches a Switchboard; a callback signed
  with this auth token over ``PUBLIC_BASE_URL/twilio/stream-status`` is accepted (the
  server there rebuilds the same URL and holds the same token); the media stream URL
  (``<Stream url>``) accepts a signed WebSocket upgrade.

``diagnose`` runs them (concurrently where independent) and returns the results; nothing
is written anywhere (the signed callback names a CallSid no call has: answered 204 and
ignored).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import ValidationError

from app.settings import Environment, Settings

#: Seconds each network check may take.
CHECK_TIMEOUT_S = 8.0
CHECKS = ("settings", "redis", "realtime", "twilio", "public-url")


class Status(StrEnum):
    ok = "OK"
    warn = "WARN"
    fail = "FAIL"
    skip = "SKIP"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: ``check`` (one of ``CHECKS``), ``status``, what was found
    (``detail``) and, unless OK, what to change (``fix``)."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status.value, "detail": self.detail,
                "fix": self.fix}  # fmt: skip


def _ok(check: str, detail: str) -> Finding:
    return Finding(check, Status.ok, detail)


def _fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, Status.fail, detail, fix)


def _warn(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, Status.warn, detail, fix)


# --- settings -------------------------------------------------------------------------------

#: What to do about each refusal ``Settings`` can raise, by the setting it names.
_SETTING_FIXES = {
    "PUBLIC_BASE_URL": "set SWITCHBOARD_PUBLIC_BASE_URL to the https URL Twilio reaches "
    "(your domain behind the TLS proxy, or a tunnel's URL for a trial)",
    "TWILIO_AUTH_TOKEN": "set SWITCHBOARD_TWILIO_AUTH_TOKEN to the auth token of the Twilio "
    "console's Account Info",
    "TWILIO_ACCOUNT_SID": "set SWITCHBOARD_TWILIO_ACCOUNT_SID to the Account SID (AC…) of the "
    "Twilio console's Account Info",
    "REALTIME_API_KEY": "set SWITCHBOARD_REALTIME_API_KEY to an OpenAI API key (or the Azure "
    "resource's key)",
    "VALIDATE_SIGNATURES": "remove SWITCHBOARD_VALIDATE_SIGNATURES (signatures are checked by "
    "default)",
    "VALIDATE_WS_SIGNATURE": "remove SWITCHBOARD_VALIDATE_WS_SIGNATURE",
}


def load_settings(values: dict[str, Any] | None) -> tuple[Settings | None, list[Finding]]:
    """``Settings`` from ``values`` (else the environment and ``.env``), and the
    findings: one per problem when they do not load."""
    try:
        settings = Settings(**values) if values is not None else Settings()
    except ValidationError as exc:
        findings = []
        for error in exc.errors():
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            where = ".".join(str(p) for p in error.get("loc", ()))
            for problem in (
                message.split(": ", 1)[-1].split("; ")
                if "refusing" in message
                else [f"{where}: {message}" if where else message]
            ):
                fix = next(
                    (f for name, f in _SETTING_FIXES.items() if f"SWITCHBOARD_{name}" in problem),
                    "correct it in the environment or .env (see .env.example)",
                )
                findings.append(_fail("settings", problem, fix))
        return None, findings
    found = [_ok("settings", f"loaded (env={settings.env.value})")]
    production = settings.env is Environment.production
    base = settings.twilio_rest_base_url
    if production and base and urlsplit(base).hostname not in ("api.twilio.com",):
        found.append(
            _fail(
                "settings",
                f"SWITCHBOARD_TWILIO_API_BASE_URL is {base}: calls would not reach Twilio",
                "unset it, or set it to https://api.twilio.com",
            )
        )
    if not production:
        found.append(
            _warn(
                "settings",
                f"env={settings.env.value}: dev defaults and placeholder secrets are accepted",
                "set SWITCHBOARD_ENV=production for real calls (it refuses unsafe settings)",
            )
        )
    if settings.uses_local_engine:
        found.append(
            _warn(
                "settings",
                "no Realtime API key or URL: calls go to the local engine (offline)",
                "set SWITCHBOARD_REALTIME_API_KEY (and SWITCHBOARD_REALTIME_DIALECT) for "
                "OpenAI or Azure",
            )
        )
    return settings, found


# --- redis ----------------------------------------------------------------------------------


async def check_redis(settings: Settings) -> list[Finding]:
    from app.migrate import available, current_version
    from app.store.keys import Keys
    from app.store.redis import create_redis, is_cluster, parse_redis_url

    try:
        target = parse_redis_url(settings.redis_url)
    except ValueError as exc:
        return [_fail("redis", str(exc), "fix SWITCHBOARD_REDIS_URL (see .env.example)")]
    where = target.describe()
    client = create_redis(settings.redis_url, connect_timeout_s=3.0, socket_timeout_s=3.0)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await client.ping()
            infos = await _node_infos(client, is_cluster(client))
            version = await current_version(client, Keys(settings.redis_prefix))
    except Exception as exc:
        return [
            _fail(
                "redis",
                f"{where} does not answer: {_why(exc)}",
                "start Redis (make redis), or point SWITCHBOARD_REDIS_URL at it; for "
                "Sentinel redis+sentinel://HOST:26379/MASTER, for a Cluster "
                "redis+cluster://HOST:PORT",
            )
        ]
    finally:
        await client.aclose()
    found = [_ok("redis", f"{where}: {len(infos)} node(s) answer PING")]
    major = min(int(str(i.get("redis_version", "0")).split(".")[0]) for i in infos.values())
    if target.kind == "cluster" and major < 7:
        found.append(
            _fail("redis", f"Redis {major} in the Cluster", "run Redis 7 or newer (SPUBLISH)")
        )
    unsaved = [node for node, saves in (await _persistence(client, infos)).items() if not saves]
    if unsaved:
        level = _fail if settings.env is Environment.production else _warn
        found.append(
            level(
                "redis",
                f"no persistence on {', '.join(sorted(unsaved))}: a restart loses "
                "transcripts, call records and campaigns",
                "turn AOF on (appendonly yes, appendfsync everysec) or RDB snapshots "
                "(save 300 10) in redis.conf; compose.yaml does",
            )
        )
    else:
        aof = all(int(i.get("aof_enabled", 0)) for i in infos.values())
        found.append(_ok("redis", "persistence on (" + ("AOF" if aof else "RDB snapshots") + ")"))
    latest = max((m.version for m in available()), default=0)
    if version < latest:
        found.append(
            _fail(
                "redis",
                f"schema version {version}, the code needs {latest}",
                "run switchboard migrate",
            )
        )
    return found


async def _node_infos(client: Any, cluster: bool) -> dict[str, dict[str, Any]]:
    """``INFO`` (server and persistence) of every primary, by ``host:port``."""
    if not cluster:
        info = await client.info()
        return {"primary": dict(info)}
    replies = await client.info(target_nodes=client.PRIMARIES)
    return {str(node): dict(info) for node, info in replies.items()}


async def _persistence(client: Any, infos: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Whether each node persists: AOF on (``INFO``), or RDB snapshots configured
    (``CONFIG GET save``; a Redis that refuses ``CONFIG``, as managed ones may, counts as
    persisting when it has saved a snapshot)."""
    out = {}
    for node, info in infos.items():
        if int(info.get("aof_enabled", 0) or 0):
            out[node] = True
            continue
        try:
            if node == "primary":
                saves = (await client.config_get("save")).get("save", "")
            else:
                host, _, port = node.rpartition(":")
                target = client.get_node(host=host, port=int(port))
                reply = await client.config_get("save", target_nodes=target)
                saves = reply.get("save", "") if isinstance(reply, dict) else ""
            out[node] = bool(str(saves).strip())
        except Exception:
            out[node] = int(info.get("rdb_saves", 0) or 0) > 0
    return out


# --- realtime -------------------------------------------------------------------------------


async def check_realtime(settings: Settings) -> list[Finding]:
    import websockets

    from app.realtime.dialect import endpoint

    target = endpoint(settings)
    shown = target.url.split("?")[0]
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with websockets.connect(
                target.url, additional_headers=target.headers, open_timeout=CHECK_TIMEOUT_S
            ) as ws:
                first = orjson.loads(await ws.recv())
    except websockets.InvalidStatus as exc:
        status = exc.response.status_code
        fix = {
            401: "the key was refused: check SWITCHBOARD_REALTIME_API_KEY",
            403: "the key may not use Realtime: check the project's or resource's access",
            404: "no such model or deployment: check SWITCHBOARD_REALTIME_MODEL, "
            "SWITCHBOARD_REALTIME_URL (Azure: …/openai/v1/realtime?model=DEPLOYMENT)",
        }.get(status, "check SWITCHBOARD_REALTIME_URL and SWITCHBOARD_REALTIME_DIALECT")
        return [_fail("realtime", f"{shown} refused the handshake: HTTP {status}", fix)]
    except Exception as exc:
        where = "start the local engine (switchboard engine)" if settings.uses_local_engine else (
            "check SWITCHBOARD_REALTIME_URL, DNS and the egress proxy (HTTPS_PROXY)"
        )  # fmt: skip
        return [_fail("realtime", f"cannot open {shown}: {_why(exc)}", where)]
    kind = first.get("type") if isinstance(first, dict) else None
    if kind != "session.created":
        detail = first.get("error", {}).get("message", kind) if isinstance(first, dict) else kind
        return [
            _fail(
                "realtime",
                f"{shown} answered {detail!r} instead of session.created",
                f"check SWITCHBOARD_REALTIME_DIALECT ({settings.realtime.dialect.value}) "
                "matches the service",
            )
        ]
    return [_ok("realtime", f"{shown}: session.created ({settings.realtime.dialect.value})")]


# --- twilio ---------------------------------------------------------------------------------


async def check_twilio(settings: Settings) -> list[Finding]:
    sid = settings.twilio_account_sid
    token = settings.twilio_auth_token.get_secret_value()
    base = (settings.twilio_rest_base_url or "https://api.twilio.com").rstrip("/")
    url = f"{base}/2010-04-01/Accounts/{sid}.json"
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
            reply = await client.get(url, auth=(sid, token))
    except httpx.HTTPError as exc:
        fix = (
            "start the carrier simulator (switchboard simulator) or set "
            "SWITCHBOARD_TWILIO_API_BASE_URL"
            if settings.twilio_rest_base_url
            else "check DNS and the egress proxy to api.twilio.com"
        )
        return [_fail("twilio", f"cannot reach {base}: {_why(exc)}", fix)]
    if reply.status_code in (401, 403):
        return [
            _fail(
                "twilio",
                f"{base} refused account {sid} (HTTP {reply.status_code})",
                "copy the Account SID and Auth Token from the Twilio console's Account Info "
                "into SWITCHBOARD_TWILIO_ACCOUNT_SID and SWITCHBOARD_TWILIO_AUTH_TOKEN",
            )
        ]
    if reply.status_code != 200:
        return [_fail("twilio", f"GET {url}: HTTP {reply.status_code}", "check the account SID")]
    account = reply.json()
    status = account.get("status")
    if status != "active":
        return [_fail("twilio", f"account {sid} is {status}", "reactivate it in the console")]
    simulated = " (the carrier simulator)" if settings.twilio_rest_base_url else ""
    name = account.get("friendly_name", "")
    return [_ok("twilio", f"account {sid} {name!r} is active{simulated}")]


# --- public URL -----------------------------------------------------------------------------


async def check_public_url(settings: Settings) -> list[Finding]:
    import websockets

    from app.carrier.twiml import SignatureChecker

    base = settings.public_base_url.rstrip("/")
    signer = SignatureChecker(settings.twilio_auth_token.get_secret_value())
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S, follow_redirects=False) as client:
            health = await client.get(f"{base}/healthz")
            if health.status_code != 200 or health.json().get("status") != "ok":
                return [
                    _fail(
                        "public-url",
                        f"{base}/healthz answered HTTP {health.status_code}, not Switchboard",
                        "route the public URL (proxy or tunnel) to switchboard serve's HTTP "
                        "port (SWITCHBOARD_PORT)",
                    )
                ]
            url = f"{base}/twilio/stream-status"
            form = {
                "AccountSid": settings.twilio_account_sid,
                "CallSid": "CA" + secrets.token_hex(16),  # no call has it: ignored
                "StreamSid": "MZ" + secrets.token_hex(16),
                "StreamEvent": "stream-started",
                "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            }
            signed = await client.post(
                url, data=form, headers={"X-Twilio-Signature": signer.sign(url, form)}
            )
    except (httpx.HTTPError, ValueError) as exc:
        return [
            _fail(
                "public-url",
                f"{base} does not reach this server: {_why(exc)}",
                "start switchboard serve and the proxy or tunnel in front of it; "
                "SWITCHBOARD_PUBLIC_BASE_URL must be the URL Twilio calls",
            )
        ]
    if signed.status_code == 403:
        return [
            _fail(
                "public-url",
                f"a callback signed for {url} was refused (signature mismatch)",
                "the server behind the public URL has another SWITCHBOARD_TWILIO_AUTH_TOKEN "
                "or SWITCHBOARD_PUBLIC_BASE_URL than these settings: make them the same",
            )
        ]
    if signed.status_code >= 300:
        return [
            _fail(
                "public-url",
                f"POST {url}: HTTP {signed.status_code}",
                "route /twilio/* of the public URL to switchboard serve's HTTP port",
            )
        ]
    found = [_ok("public-url", f"{base} reaches Switchboard; signed callbacks are accepted")]
    stream = settings.media_stream_url
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with websockets.connect(
                stream,
                additional_headers={"X-Twilio-Signature": signer.sign(stream, {})},
                open_timeout=CHECK_TIMEOUT_S,
            ):
                pass
    except websockets.InvalidStatus as exc:
        status = exc.response.status_code
        why = "signature mismatch" if status == 403 else f"HTTP {status}"
        found.append(
            _fail(
                "public-url",
                f"the media stream URL {stream} refused the upgrade ({why})",
                "route /twilio/media to the media port (SWITCHBOARD_MEDIA_PORT: "
                "deploy/nginx.conf) with its Upgrade headers, or set "
                "SWITCHBOARD_MEDIA_PUBLIC_URL",
            )
        )
    except Exception as exc:
        found.append(
            _fail(
                "public-url",
                f"cannot open the media stream URL {stream}: {_why(exc)}",
                "route wss://…/twilio/media to the media port (SWITCHBOARD_MEDIA_PORT)",
            )
        )
    else:
        found.append(_ok("public-url", f"media streams: {stream} accepts a signed upgrade"))
    if settings.env is Environment.production and not base.startswith("https://"):
        fix = "terminate TLS at the proxy (Twilio needs https webhooks and wss media streams)"
        found.append(_fail("public-url", f"{base} is not https", fix))
    return found


# --- running --------------------------------------------------------------------------------


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"


async def diagnose(
    values: dict[str, Any] | None = None, *, skip: Iterable[str] = ()
) -> list[Finding]:
    """Run every check not in ``skip`` (names of ``CHECKS``) against ``values`` (else the
    environment): the findings in ``CHECKS`` order. Never raises for what it checks."""
    skipped = set(skip)
    settings, found = load_settings(values)
    if settings is None:
        return found + [
            Finding(c, Status.skip, "settings do not load") for c in CHECKS[1:] if c not in skipped
        ]
    runs: dict[str, Callable[[Settings], Awaitable[list[Finding]]]] = {
        "redis": check_redis,
        "realtime": check_realtime,
        "twilio": check_twilio,
        "public-url": check_public_url,
    }
    names = [n for n in runs if n not in skipped]

    async def guarded(name: str) -> list[Finding]:
        try:
            return await runs[name](settings)
        except Exception as exc:  # a check's own failure is a finding, not a crash
            return [_fail(name, f"the check failed: {_why(exc)}", "report this")]

    results = await asyncio.gather(*(guarded(n) for n in names))
    for result in results:
        found += result
    return found


def render(findings: list[Finding]) -> str:
    """The findings as the command prints them: one line each, the fix indented below."""
    lines = []
    for f in findings:
        lines.append(f"{f.status.value:<5} {f.check:<11} {f.detail}")
        if f.fix:
            lines.append(f"{'':<17} fix: {f.fix}")
    failed = sum(f.status is Status.fail for f in findings)
    warned = sum(f.status is Status.warn for f in findings)
    lines.append(
        "all checks passed" if not failed and not warned
        else f"{failed} problem(s), {warned} warning(s)"
    )  # fmt: skip
    return "\n".join(lines)
