"""``switchboard dialer`` and ``switchboard campaign …`` (mounted by ``app/cli.py``).

The campaign commands work on Redis directly (same settings as the server), so they
need no admin key; the calls themselves are placed by dialers (``switchboard serve``
with ``SWITCHBOARD_DIALER_ENABLED=true``, or ``switchboard dialer`` processes).

    switchboard campaign create spec.yaml          # prints the new id
    switchboard campaign import CID contacts.csv    # row-numbered errors, good rows kept
    switchboard campaign start CID --watch          # live progress until it is done
    switchboard campaign run spec.yaml contacts.csv # create + import + start + watch
    switchboard campaign pause|resume|cancel CID
    switchboard campaign stats CID [--json] | list | contacts CID | history CID N
    switchboard campaign opt-out CID +15551234567
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import typer
import yaml
from pydantic import ValidationError

from app.cli_support import make_typer, settings_or_exit
from app.dialer.models import CampaignSpec
from app.dialer.progress import NOT_CALLED, NOT_REACHED, finished, render, summary
from app.errors import DialerError, StoreError

if TYPE_CHECKING:
    from app.dialer.runtime import DialerRuntime
    from app.settings import Settings
    from switchboard_sim.outbound import OutboundRules
    from switchboard_sim.simulator import Simulator

T = TypeVar("T")

campaign_app = make_typer(
    "campaign", "Outbound campaigns: create, import contacts, start/pause/resume/cancel, progress."
)


def _run(work: Callable[[DialerRuntime], Awaitable[T]]) -> T:
    """Run ``work`` with a runtime on a fresh Redis client; errors exit 1 with a message."""
    from app.dialer.runtime import DialerRuntime
    from app.store.redis import create_redis
    from flows import FlowCatalog

    settings = settings_or_exit()

    async def main() -> T:
        redis = create_redis(settings.redis_url)
        try:
            flows = FlowCatalog.load(settings.flows_dir)
            runtime = DialerRuntime.build(settings, redis, flows=lambda: flows)
            return await work(runtime)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(main())
    except (DialerError, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _load_spec(path: Path) -> CampaignSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return CampaignSpec.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        typer.echo(f"error: cannot read {path}: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        typer.echo(f"error: invalid campaign spec {path}:\n{exc}", err=True)
        raise typer.Exit(2) from None


def _print_import(report: dict[str, Any], err: bool = False) -> None:
    typer.echo(
        f"imported {report['imported']} contact(s), rejected {report['rejected']} row(s)",
        err=err,
    )
    for e in report["errors"]:
        where = f" [{e['field']}]" if e["field"] else ""
        typer.echo(f"  row {e['row']}{where}: {e['message']}", err=True)


async def _live_dialers(runtime: DialerRuntime) -> int:
    """Dialers whose heartbeat was seen within three heartbeat periods."""
    stale_ms = 3 * runtime.settings.dialer.heartbeat_ms
    return len(await runtime.store.dialers(runtime.clock.now_ms(), stale_ms))


async def _watch(runtime: DialerRuntime, cid: str, interval_s: float, out: Any) -> dict[str, Any]:
    """Redraw the progress display every ``interval_s`` until the campaign is finished:
    counts, the next dial when contacts wait for a retry or their window, the last dial
    error, and a warning when no dialer is alive."""
    tty = out.isatty()
    previous: list[str] = []
    while True:
        stats = await runtime.campaigns.stats(cid)
        dialers = await _live_dialers(runtime)
        started = (await runtime.campaigns.get(cid)).started_at_ms
        lines = render(
            stats,
            now_ms=runtime.clock.now_ms(),
            dialers=dialers,
            countdown=tty,
            started_at_ms=started,
        )
        if tty:
            if previous:
                out.write(f"\x1b[{len(previous)}F")  # back to the start of the last drawing
            out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            # a shorter drawing than the last: clear the lines left below it
            out.write("\x1b[2K\n" * (len(previous) - len(lines)))
            if len(previous) > len(lines):
                out.write(f"\x1b[{len(previous) - len(lines)}F")
            out.flush()
        elif lines != previous:
            out.write("\n".join(lines) + "\n")
            out.flush()
        previous = lines
        if finished(stats):
            return stats
        await asyncio.sleep(interval_s)


#: Contacts listed in the end summary's "not reached" table (the rest are counted).
SUMMARY_ROWS = 20
#: Contacts read to find the ones not reached (a bigger campaign's are counted from stats).
SUMMARY_SCAN = 5000


async def _summary(runtime: DialerRuntime, cid: str, stats: dict[str, Any]) -> dict[str, Any]:
    """What the end summary shows: the campaign's times and the contacts not reached
    (with their last attempt's error), at most ``SUMMARY_ROWS`` of them listed."""
    campaign = await runtime.campaigns.get(cid)
    missed = set(NOT_REACHED) | set(NOT_CALLED)
    outcomes: dict[str, int] = stats.get("outcomes") or {}
    total_missed = sum(n for o, n in outcomes.items() if o in missed)
    rows: list[dict[str, Any]] = []
    offset = 0
    while len(rows) < SUMMARY_ROWS and offset < min(SUMMARY_SCAN, int(stats["contacts"])):
        page = await runtime.campaigns.contacts(cid, offset, 500)
        if not page:
            break
        offset += 500
        for contact in page:
            if contact.get("outcome") in missed and len(rows) < SUMMARY_ROWS:
                history = await runtime.campaigns.contact_history(cid, str(contact["id"]))
                attempts = history.get("attempts") or []
                last = attempts[-1] if attempts else {}
                contact["error"] = last.get("error") or (
                    f"{contact['reason']}" if contact.get("reason") else ""
                )
                rows.append(contact)
    return {
        "started_at_ms": campaign.started_at_ms,
        "ended_at_ms": campaign.ended_at_ms,
        "not_reached": rows,
        "not_reached_total": total_missed,
    }


async def _watch_and_sum_up(
    runtime: DialerRuntime, cid: str, interval_s: float, as_json: bool
) -> dict[str, Any]:
    """``_watch``, then the end summary: a table, or (``as_json``) one JSON object
    ``{"stats": …, "started_at_ms", "ended_at_ms", "not_reached": […], …}``."""
    stats = await _watch(runtime, cid, interval_s, sys.stderr if as_json else sys.stdout)
    extra = await _summary(runtime, cid, stats)
    if as_json:
        typer.echo(json.dumps({"stats": stats, **extra}, sort_keys=True))
    else:
        typer.echo("")
        typer.echo("\n".join(summary(stats, now_ms=runtime.clock.now_ms(), **extra)))
    return stats


@campaign_app.command("create")
def create(spec: Annotated[Path, typer.Argument(help="Campaign spec, YAML or JSON.")]) -> None:
    """Create a draft campaign from a spec file; prints its id."""
    campaign_spec = _load_spec(spec)
    campaign = _run(lambda rt: rt.campaigns.create(campaign_spec))
    typer.echo(campaign.id)


@campaign_app.command("import")
def import_(
    campaign: Annotated[str, typer.Argument(help="Campaign id.")],
    file: Annotated[Path, typer.Argument(help="Contacts, .csv or .json.")],
) -> None:
    """Import contacts; bad rows are listed by row number, good rows imported."""
    data = file.read_bytes()
    fmt = "json" if file.suffix.lower() == ".json" else "csv"
    report = _run(lambda rt: rt.campaigns.import_contacts(campaign, data, fmt))
    _print_import(report.as_dict())


def _transition(
    action: str, campaign: str, watch: bool, interval: float, as_json: bool = False
) -> None:
    async def work(rt: DialerRuntime) -> None:
        result = await getattr(rt.campaigns, action)(campaign)
        typer.echo(f"{result.id}: {result.status.value}", err=as_json)
        if watch:
            await _watch_and_sum_up(rt, campaign, interval, as_json)

    _run(work)


WatchOpt = Annotated[bool, typer.Option("--watch", help="Show progress until it is done.")]
IntervalOpt = Annotated[float, typer.Option(help="Seconds between progress updates.")]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="At the end print one JSON object (stats, times, contacts not reached) instead "
        "of the table; progress goes to stderr.",
    ),
]


@campaign_app.command("start")
def start(
    campaign: str, watch: WatchOpt = False, interval: IntervalOpt = 1.0, as_json: JsonOpt = False
) -> None:
    """Start dialling (draft → running). Refused without a loaded flow or contacts."""
    _transition("start", campaign, watch, interval, as_json)


@campaign_app.command("pause")
def pause(campaign: str) -> None:
    """No new dials; calls in progress finish."""
    _transition("pause", campaign, False, 1.0)


@campaign_app.command("resume")
def resume(
    campaign: str, watch: WatchOpt = False, interval: IntervalOpt = 1.0, as_json: JsonOpt = False
) -> None:
    """Resume a paused campaign."""
    _transition("resume", campaign, watch, interval, as_json)


@campaign_app.command("cancel")
def cancel(campaign: str) -> None:
    """Cancel: waiting contacts end ``campaign_cancelled``; live calls finish."""
    _transition("cancel", campaign, False, 1.0)


@campaign_app.command("watch")
def watch(campaign: str, interval: IntervalOpt = 1.0, as_json: JsonOpt = False) -> None:
    """Live progress display until the campaign is finished (ETA, next dial, dial
    errors), then the end summary: outcomes, attempts, duration, contacts not reached."""
    _run(lambda rt: _watch_and_sum_up(rt, campaign, interval, as_json))


async def _answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _stop(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


async def _check_dialers(rt: DialerRuntime) -> None:
    """Stop at once when no dialer is alive: nothing would place the calls."""
    if not await _live_dialers(rt):
        _stop(
            f"no dialer is running against this Redis (key prefix {rt.settings.redis_prefix!r}),"
            " so nothing would place the calls. Start `switchboard serve` (its dialer is on"
            " unless SWITCHBOARD_DIALER_ENABLED=false) or `switchboard dialer` with the same"
            " settings, then run this again."
        )


async def _carrier(
    settings: Settings, start: bool | None, rules: OutboundRules | None
) -> Simulator | None:
    """Make sure the carrier the dialers call answers. When the Twilio REST base URL is
    a loopback URL (the carrier simulator's) where nothing listens: start the simulator
    there for this run (``start``; None: in dev), or stop with what to start."""
    from switchboard_sim.simulator import (
        Simulator,
        SimulatorError,
        default_rules,
        is_loopback,
        loopback_rest_address,
    )

    address = loopback_rest_address(settings)
    if address is None or await _answers(*address):
        return None  # Twilio itself, another host, or the carrier answers
    host, port = address
    url = settings.twilio_rest_base_url
    if not (settings.is_dev if start is None else start):
        _stop(
            f"nothing answers at {url}, the Twilio REST API the dialers place calls through"
            " (SWITCHBOARD_TWILIO_API_BASE_URL; in dev with the dev account it defaults to the"
            " carrier simulator on SWITCHBOARD_SIMULATOR_PORT). Start the carrier simulator"
            " with the same settings first:\n    switchboard simulator\n(in dev `campaign"
            " run` starts one itself unless --no-simulator)"
        )
    server = settings.public_base_url
    parts = urlsplit(server)
    server_port = parts.port or (443 if parts.scheme == "https" else 80)
    if is_loopback(parts.hostname) and not await _answers(parts.hostname or "", server_port):
        _stop(
            f"the server does not answer at {server} (SWITCHBOARD_PUBLIC_BASE_URL), where the"
            " carrier simulator delivers the calls and their callbacks. Start"
            " `switchboard serve` with the same settings first."
        )
    sim = Simulator(
        server_url=server,
        public_base_url=server,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        host=host,
        port=port,
        rules=rules or default_rules(),
    )
    try:
        await sim.start()
    except SimulatorError as exc:
        _stop(f"cannot start the carrier simulator: {exc}")
    typer.echo(
        f"nothing answered at {url} (the Twilio REST API): started the carrier simulator"
        f" there for this run; calls go to the server at {server}. `switchboard simulator`"
        " runs it on its own.",
        err=True,
    )
    return sim


SimulatorOpt = Annotated[
    bool | None,
    typer.Option(
        "--simulator/--no-simulator",
        help="When the Twilio REST base URL is a loopback URL where nothing listens, start "
        "the carrier simulator there for this run (default: in dev), or stop at once "
        "saying what to start (--no-simulator).",
        show_default=False,
    ),
]
RulesOpt = Annotated[
    Path | None,
    typer.Option(
        "--simulator-rules",
        envvar="SWITCHBOARD_SIMULATOR_RULES",
        help="Rules for a simulator started by this run (see `switchboard simulator`).",
    ),
]


@campaign_app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="Campaign spec, YAML or JSON.")],
    contacts: Annotated[Path, typer.Argument(help="Contacts, .csv or .json.")],
    interval: IntervalOpt = 1.0,
    simulator: SimulatorOpt = None,
    simulator_rules: RulesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create, import, start and watch a campaign in one go, then print the end summary
    (outcomes, attempts, duration, contacts not reached and why). First checks that a
    dialer is running and that the carrier answers; in dev a carrier simulator is
    started for the run when none answers at the (loopback) Twilio REST base URL."""
    from app import logs
    from switchboard_sim.simulator import SimulatorError, load_rules

    campaign_spec = _load_spec(spec)
    data = contacts.read_bytes()
    fmt = "json" if contacts.suffix.lower() == ".json" else "csv"
    settings = settings_or_exit()
    rules = None
    if simulator_rules is not None:
        try:
            rules = load_rules(simulator_rules)
        except SimulatorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    # Warnings only: the progress display is the run's output.
    logs.configure("WARNING", settings.log_json)

    async def work(rt: DialerRuntime) -> dict[str, Any]:
        await _check_dialers(rt)
        sim = await _carrier(rt.settings, simulator, rules)
        try:
            campaign = await rt.campaigns.create(campaign_spec)
            typer.echo(f"campaign {campaign.id} created", err=as_json)
            report = await rt.campaigns.import_contacts(campaign.id, data, fmt)
            _print_import(report.as_dict(), err=as_json)
            await rt.campaigns.start(campaign.id)
            try:
                return await _watch_and_sum_up(rt, campaign.id, interval, as_json)
            except asyncio.CancelledError:  # Ctrl-C: the campaign itself goes on
                cid = campaign.id
                typer.echo(
                    f"stopped watching; campaign {cid} goes on (`switchboard campaign watch"
                    f" {cid}`, `pause {cid}`, `cancel {cid}`)"
                    + ("; the carrier simulator this run started stops now" if sim else ""),
                    err=True,
                )
                raise
        finally:
            if sim is not None:
                await sim.stop()

    _run(work)


@campaign_app.command("stats")
def stats(
    campaign: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Live stats: waiting, calling, done per outcome, attempts."""
    result = _run(lambda rt: rt.campaigns.stats(campaign))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo("\n".join(render(result)))


@campaign_app.command("list")
def list_(limit: Annotated[int, typer.Option(help="Most campaigns shown.")] = 20) -> None:
    """Campaigns, newest first."""

    async def work(rt: DialerRuntime) -> list[dict[str, Any]]:
        return [await rt.campaigns.stats(c.id) for c in await rt.campaigns.list_campaigns(limit)]

    for s in _run(work):
        typer.echo(render(s)[0])


@campaign_app.command("contacts")
def contacts_(
    campaign: str,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Contacts in import order (masked numbers) with their state and outcome."""
    rows = _run(lambda rt: rt.campaigns.contacts(campaign, offset, limit))
    for r in rows:
        typer.echo(
            f"{r['id']:>6} {r['phone_masked']:<16} {r['timezone']:<22} {r['state']:<8} "
            f"{r['outcome'] or '-':<18} attempts {r['attempts']}"
        )


@campaign_app.command("history")
def history(campaign: str, contact: str) -> None:
    """One contact's attempts (JSON)."""
    typer.echo(
        json.dumps(_run(lambda rt: rt.campaigns.contact_history(campaign, contact)), indent=2)
    )


@campaign_app.command("opt-out")
def opt_out(campaign: str, number: str) -> None:
    """Opt a number out of the campaign (checked before every dial)."""
    try:
        _run(lambda rt: rt.campaigns.opt_out_number(campaign, number))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("opted out")


def dialer(
    name: Annotated[
        str | None, typer.Option("--id", help="Dialer id in leases (default: host-pid-random).")
    ] = None,
) -> None:
    """Run a campaign dialer until SIGINT/SIGTERM. Any number may run against one Redis:
    leases, concurrency caps and CPS limits hold across all of them."""
    from app import logs
    from app.dialer.runtime import DialerRuntime
    from app.store.redis import create_redis

    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_json)

    async def main() -> None:
        redis = create_redis(settings.redis_url)
        runtime = DialerRuntime.build(settings, redis)
        worker = runtime.dialer(owner=name)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker.start()
        try:
            await stop.wait()
        finally:
            await worker.stop()
            await redis.aclose()

    asyncio.run(main())
