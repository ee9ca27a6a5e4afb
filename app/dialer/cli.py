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
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from pydantic import ValidationError

from app.cli_support import make_typer, settings_or_exit
from app.dialer.models import CampaignSpec
from app.dialer.progress import finished, render
from app.errors import DialerError, StoreError

if TYPE_CHECKING:
    from app.dialer.runtime import DialerRuntime

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


def _print_import(report: dict[str, Any]) -> None:
    typer.echo(f"imported {report['imported']} contact(s), rejected {report['rejected']} row(s)")
    for e in report["errors"]:
        where = f" [{e['field']}]" if e["field"] else ""
        typer.echo(f"  row {e['row']}{where}: {e['message']}", err=True)


async def _watch(runtime: DialerRuntime, cid: str, interval_s: float, out: Any) -> dict[str, Any]:
    """Redraw the progress display every ``interval_s`` until the campaign is finished."""
    tty = out.isatty()
    previous: list[str] = []
    while True:
        stats = await runtime.campaigns.stats(cid)
        lines = render(stats)
        if tty:
            if previous:
                out.write("\x1b[2F")  # back to the start of the previous two lines
            out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            out.flush()
        elif lines != previous:
            out.write("\n".join(lines) + "\n")
            out.flush()
        previous = lines
        if finished(stats):
            return stats
        await asyncio.sleep(interval_s)


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


def _transition(action: str, campaign: str, watch: bool, interval: float) -> None:
    async def work(rt: DialerRuntime) -> None:
        result = await getattr(rt.campaigns, action)(campaign)
        typer.echo(f"{result.id}: {result.status.value}")
        if watch:
            await _watch(rt, campaign, interval, sys.stdout)

    _run(work)


WatchOpt = Annotated[bool, typer.Option("--watch", help="Show progress until it is done.")]
IntervalOpt = Annotated[float, typer.Option(help="Seconds between progress updates.")]


@campaign_app.command("start")
def start(campaign: str, watch: WatchOpt = False, interval: IntervalOpt = 1.0) -> None:
    """Start dialling (draft → running). Refused without a loaded flow or contacts."""
    _transition("start", campaign, watch, interval)


@campaign_app.command("pause")
def pause(campaign: str) -> None:
    """No new dials; calls in progress finish."""
    _transition("pause", campaign, False, 1.0)


@campaign_app.command("resume")
def resume(campaign: str, watch: WatchOpt = False, interval: IntervalOpt = 1.0) -> None:
    """Resume a paused campaign."""
    _transition("resume", campaign, watch, interval)


@campaign_app.command("cancel")
def cancel(campaign: str) -> None:
    """Cancel: waiting contacts end ``campaign_cancelled``; live calls finish."""
    _transition("cancel", campaign, False, 1.0)


@campaign_app.command("watch")
def watch(campaign: str, interval: IntervalOpt = 1.0) -> None:
    """Live progress display until the campaign is finished."""
    _run(lambda rt: _watch(rt, campaign, interval, sys.stdout))


@campaign_app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="Campaign spec, YAML or JSON.")],
    contacts: Annotated[Path, typer.Argument(help="Contacts, .csv or .json.")],
    interval: IntervalOpt = 1.0,
) -> None:
    """Create, import, start and watch a campaign in one go."""
    campaign_spec = _load_spec(spec)
    data = contacts.read_bytes()
    fmt = "json" if contacts.suffix.lower() == ".json" else "csv"

    async def work(rt: DialerRuntime) -> dict[str, Any]:
        campaign = await rt.campaigns.create(campaign_spec)
        typer.echo(f"campaign {campaign.id} created")
        report = await rt.campaigns.import_contacts(campaign.id, data, fmt)
        _print_import(report.as_dict())
        await rt.campaigns.start(campaign.id)
        return await _watch(rt, campaign.id, interval, sys.stdout)

    stats = _run(work)
    typer.echo(json.dumps(stats["outcomes"], sort_keys=True))


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
