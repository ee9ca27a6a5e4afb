"""``switchboard webhooks``: subscribe URLs to events, list them, read delivery logs.

    switchboard webhooks add https://crm.example.com/hook --event call.ended --event call.analyzed
    switchboard webhooks list
    switchboard webhooks deliveries wh_0123456789ab
    switchboard webhooks ping wh_0123456789ab
    switchboard webhooks disable|enable|remove wh_0123456789ab

The same operations as ``/admin/webhooks``; changes are audit entries (``cli:user@host``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from app.cli_support import make_typer, settings_or_exit

T = TypeVar("T")

webhooks_app = make_typer(
    "webhooks",
    "Signed event webhooks: add a URL for events (secret shown once), list, delivery log, ping.",
)


def _run(work: Callable[[Any], Awaitable[T]], action: str = "", target: str = "") -> T:
    """Run ``work(store)`` against the configured Redis; exit 1 on storage errors, 2 on
    bad input. With ``action``, the write is recorded in the audit trail."""
    from app.admin.audit import AuditLog, cli_actor
    from app.errors import StoreError
    from app.store.event_keys import EventKeys
    from app.store.keys import Keys
    from app.store.redis import create_redis
    from app.webhooks.subscriptions import WebhookStore

    settings = settings_or_exit()

    async def main() -> T:
        redis = create_redis(settings.redis_url)
        try:
            keys = Keys(settings.redis_prefix)
            store = WebhookStore(
                redis,
                EventKeys(keys),
                policy=settings.webhook_policy,
                max_subscriptions=settings.webhook_max_subscriptions,
            )
            result = await work(store)
            if action:
                audit = AuditLog(redis, keys, settings.audit_retention_days * 86400)
                detail = result if isinstance(result, dict) else {}
                await audit.record(
                    action=action,
                    actor=cli_actor(),
                    via="cli",
                    ip="local",
                    target=target or str(detail.get("id", "")),
                    detail={k: v for k, v in detail.items() if k != "secret"},
                )
            return result
        finally:
            await redis.aclose()

    try:
        return asyncio.run(main())
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _missing(sub_id: str) -> None:
    typer.echo(f"error: no webhook subscription {sub_id}", err=True)
    raise typer.Exit(1)


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the POSTs.")],
    event: Annotated[
        list[str],
        typer.Option(
            "--event",
            "-e",
            help="An event type (repeat for more): call.started, call.ended, call.analyzed, "
            "transfer.completed, campaign.contact_finished, campaign.finished; '*' for all.",
        ),
    ],
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
) -> None:
    """Subscribe URL to events. Prints the signing secret once: keep it to verify the
    Switchboard-Signature header."""

    async def work(store: Any) -> dict[str, Any]:
        sub = await store.create(url, event, description=description)
        return {"id": sub.id, "url": sub.url, "events": sub.events, "secret": sub.secret}

    made = _run(work, action="webhook.create")
    typer.echo(f"webhook {made['id']} → {made['url']} for {', '.join(made['events'])}")
    typer.echo(f"signing secret (shown once): {made['secret']}")


@webhooks_app.command("list")
def list_() -> None:
    """Every subscription, newest first."""

    async def work(store: Any) -> list[Any]:
        subs, cursor = await store.page(cursor=None, limit=500)
        while cursor:
            more, cursor = await store.page(cursor=cursor, limit=500)
            subs += more
        return list(subs)

    subs = _run(work)
    if not subs:
        typer.echo("no webhook subscriptions (add one: switchboard webhooks add URL -e call.ended)")
        return
    for s in subs:
        state = "enabled" if s.enabled else "disabled"
        typer.echo(f"{s.id}  {state:<8}  {s.url}  [{', '.join(s.events)}]  {s.description}")


@webhooks_app.command("deliveries")
def deliveries(
    sub_id: Annotated[str, typer.Argument(help="Subscription id (wh_…).")],
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
) -> None:
    """The subscription's delivery log: every attempt, its answer and the next try."""

    async def work(store: Any) -> list[Any] | None:
        if await store.get(sub_id) is None:
            return None
        entries, _ = await store.log_page(sub_id, cursor=None, limit=limit)
        return list(entries)

    entries = _run(work)
    if entries is None:
        _missing(sub_id)
        return
    if not entries:
        typer.echo("no deliveries yet")
    for e in entries:
        answer = f"HTTP {e.status}" if e.status else (e.error or "-")
        extra = f"  next {_when(e.next_at_ms)}" if e.outcome == "retry" else ""
        error = f"  ({e.error})" if e.error and e.status else ""
        typer.echo(
            f"{_when(e.at_ms)}  {e.outcome:<9}  {e.type:<26} #{e.attempt}  {answer}"
            f"  {e.duration_ms:.0f} ms{error}{extra}"
        )


def _set_enabled(sub_id: str, enabled: bool) -> None:
    async def work(store: Any) -> dict[str, Any] | None:
        sub = await store.update(sub_id, enabled=enabled)
        return None if sub is None else {"id": sub.id, "enabled": enabled}

    if _run(work, action="webhook.update", target=sub_id) is None:
        _missing(sub_id)
    typer.echo(f"webhook {sub_id} {'enabled' if enabled else 'disabled'}")


@webhooks_app.command("disable")
def disable(sub_id: Annotated[str, typer.Argument(help="Subscription id (wh_…).")]) -> None:
    """Stop sending to this subscription (pending deliveries are dropped)."""
    _set_enabled(sub_id, False)


@webhooks_app.command("enable")
def enable(sub_id: Annotated[str, typer.Argument(help="Subscription id (wh_…).")]) -> None:
    """Send to this subscription again (events from now on)."""
    _set_enabled(sub_id, True)


@webhooks_app.command("remove")
def remove(sub_id: Annotated[str, typer.Argument(help="Subscription id (wh_…).")]) -> None:
    """Delete a subscription and its delivery log."""

    async def work(store: Any) -> dict[str, Any] | None:
        return {"id": sub_id} if await store.delete(sub_id) else None

    if _run(work, action="webhook.delete", target=sub_id) is None:
        _missing(sub_id)
    typer.echo(f"webhook {sub_id} removed")


@webhooks_app.command("ping")
def ping(sub_id: Annotated[str, typer.Argument(help="Subscription id (wh_…).")]) -> None:
    """Queue a signed webhook.ping event for this subscription (a running server sends
    it; see `switchboard webhooks deliveries`)."""
    from app.events.bus import envelope
    from app.webhooks.dispatch import enqueue

    async def work(store: Any) -> dict[str, Any] | None:
        sub = await store.get(sub_id)
        if sub is None:
            return None
        event = envelope("webhook.ping", {"webhook_id": sub.id, "by": "cli"})
        await enqueue(store.redis, store.keys, sub, event)
        return {"id": sub.id, "event_id": event.id}

    result = _run(work, action="webhook.ping", target=sub_id)
    if result is None:
        _missing(sub_id)
        return
    typer.echo(f"queued webhook.ping {result['event_id']} for {sub_id}")
