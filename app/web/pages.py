"""The operator pages beyond the calls: transcript search, campaigns (live progress,
outcomes, per-contact history), the do-not-call list, flows (view, validate, reload)
and webhooks (subscriptions and delivery logs). Each needs a session (else: to the
login form); changes are made by the page's script through the JSON admin API with the
session's CSRF token, so every write is checked and audited as an API write."""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.admin.dnc import DncList
from app.admin.schemas import CallDetail
from app.admin.service import storage_errors
from app.api.deps import ServicesDep
from app.api.routes.admin_calls import search_calls
from app.api.routes.admin_webhooks import webhook_store
from app.dialer.runtime import runtime_of
from app.errors import CampaignNotFound, StoreError
from app.store.paging import zset_page
from app.web.common import PAGE, PagePrincipal, base, parse_time, render

log = logging.getLogger(__name__)

router = APIRouter()
_MISSING: dict[int | str, dict[str, Any]] = {
    **PAGE,
    404: {"content": {"text/html": {}}, "description": "No such thing"},
}


def turns_with_latency(detail: CallDetail) -> list[dict[str, Any]]:
    """The transcript lines, each agent line that answered the caller with its latency
    (end of caller speech → first agent audio, ms; from ``turn_latencies_ms`` in order).
    """
    latencies = list(detail.turn_latency.turns_ms)
    out = []
    previous = ""
    for line in detail.transcript:
        latency = None
        if line.role == "assistant" and previous == "user" and latencies:
            latency = latencies.pop(0)
        out.append({"t": line, "latency_ms": latency})
        previous = line.role
    return out


def _missing(request: Request, principal: Any, what: str, section: str) -> HTMLResponse:
    context = {**base(principal, section), "what": what}
    return render(request, "missing.html", context, status_code=404)


# --- search ------------------------------------------------------------------------------


@router.get(
    "/search",
    summary="Calls found by what was said",
    response_class=HTMLResponse,
    responses=PAGE,
)
async def search_page(
    request: Request,
    services: ServicesDep,
    principal: PagePrincipal,
    q: Annotated[str | None, Query(max_length=200)] = None,
    flow: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    form = {"q": q or "", "flow": flow or "", "since": since or "", "until": until or ""}
    error, page = None, None
    if q:
        try:
            page = await search_calls(
                request,
                services,
                principal,
                q=q,
                since=parse_time(since),
                until=parse_time(until),
                flow=flow or None,
                cursor=cursor,
                limit=20,
            )
        except ValueError as exc:
            error = str(exc)
        except HTTPException as exc:  # a bad query or cursor: its detail is for people
            error = str(exc.detail)
    more = None
    if page is not None and page.next_cursor:
        more = "?" + urlencode({**{k: v for k, v in form.items() if v}, "cursor": page.next_cursor})
    context = {
        **base(principal, "search"),
        "form": form,
        "page": page,
        "error": error,
        "more": more,
        "flows": sorted(services.flows.flows),
    }
    return render(request, "search.html", context)


# --- campaigns ---------------------------------------------------------------------------


@router.get("/campaigns", summary="Campaigns", response_class=HTMLResponse, responses=PAGE)
async def campaigns_page(
    request: Request,
    services: ServicesDep,
    principal: PagePrincipal,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    runtime = runtime_of(request.app.state)
    rows: list[dict[str, Any]] = []
    next_cursor = None
    error = None
    if runtime is None:
        error = "The dialer is not available in this process."
    else:
        try:
            ids, next_cursor = await zset_page(
                runtime.redis, runtime.keys.campaigns, cursor=cursor, limit=50
            )
            for cid, _ in ids:
                with contextlib.suppress(CampaignNotFound):
                    rows.append(await runtime.campaigns.stats(cid))
        except ValueError as exc:
            error = str(exc)
        except StoreError as exc:
            log.error("campaigns page: %s", exc)
            error = "Storage is unavailable right now."
    context = {
        **base(principal, "campaigns"),
        "rows": rows,
        "error": error,
        "more": f"?cursor={next_cursor}" if next_cursor else None,
    }
    return render(request, "campaigns.html", context)


@router.get(
    "/campaigns/{cid}",
    summary="One campaign: live progress, outcomes, contacts",
    response_class=HTMLResponse,
    responses=_MISSING,
)
async def campaign_page(
    request: Request,
    services: ServicesDep,
    principal: PagePrincipal,
    cid: str,
    after: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    runtime = runtime_of(request.app.state)
    if runtime is None or len(cid) > 64:
        return _missing(request, principal, f"campaign {cid}", "campaigns")
    try:
        with storage_errors():
            campaign = await runtime.campaigns.get(cid)
            stats = await runtime.campaigns.stats(cid)
            contacts = await runtime.campaigns.contacts(cid, after, 50)
    except CampaignNotFound:
        return _missing(request, principal, f"campaign {cid}", "campaigns")
    last = after + 50
    context = {
        **base(principal, "campaigns"),
        "c": campaign,
        "s": stats,
        "contacts": contacts,
        "more": f"?after={last}" if last < int(stats["contacts"]) else None,
    }
    return render(request, "campaign.html", context)


@router.get(
    "/campaigns/{cid}/contacts/{n}",
    summary="One contact's attempts",
    response_class=HTMLResponse,
    responses=_MISSING,
)
async def contact_page(
    request: Request, services: ServicesDep, principal: PagePrincipal, cid: str, n: str
) -> Response:
    runtime = runtime_of(request.app.state)
    if runtime is None or not n.isdigit() or len(n) > 9 or len(cid) > 64:
        return _missing(request, principal, f"contact {n}", "campaigns")
    try:
        with storage_errors():
            history = await runtime.campaigns.contact_history(cid, n)
    except CampaignNotFound:
        return _missing(request, principal, f"contact {n} of {cid}", "campaigns")
    context = {**base(principal, "campaigns"), "cid": cid, "h": history}
    return render(request, "contact.html", context)


# --- do-not-call -------------------------------------------------------------------------


@router.get("/dnc", summary="The do-not-call list", response_class=HTMLResponse, responses=PAGE)
async def dnc_page(
    request: Request,
    services: ServicesDep,
    principal: PagePrincipal,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    error = None
    entries: list[Any] = []
    next_cursor = None
    dnc = DncList(services.redis, services.keys)
    try:
        with storage_errors():
            entries, next_cursor = await dnc.page(limit=100, cursor=cursor)
    except ValueError as exc:
        error = str(exc)
    context = {
        **base(principal, "dnc"),
        "entries": entries,
        "error": error,
        "more": f"?cursor={next_cursor}" if next_cursor else None,
    }
    return render(request, "dnc.html", context)


# --- flows -------------------------------------------------------------------------------


@router.get("/flows", summary="The flows", response_class=HTMLResponse, responses=PAGE)
async def flows_page(request: Request, services: ServicesDep, principal: PagePrincipal) -> Response:
    catalog = services.flows
    context = {
        **base(principal, "flows"),
        "flows": [catalog.flows[name] for name in sorted(catalog.flows)],
        "default": catalog.default.name,
    }
    return render(request, "flows.html", context)


@router.get("/flows/{name}", summary="One flow", response_class=HTMLResponse, responses=_MISSING)
async def flow_page(
    request: Request, services: ServicesDep, principal: PagePrincipal, name: str
) -> Response:
    flow = services.flows.get(name)
    if flow is None:
        return _missing(request, principal, f"flow {name}", "flows")
    text = orjson.dumps(flow.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode()
    context = {**base(principal, "flows"), "flow": flow, "text": text}
    return render(request, "flow.html", context)


# --- webhooks ----------------------------------------------------------------------------


@router.get(
    "/webhooks", summary="Webhook subscriptions", response_class=HTMLResponse, responses=PAGE
)
async def webhooks_page(
    request: Request,
    services: ServicesDep,
    principal: PagePrincipal,
    sub: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    store = webhook_store(services)
    with storage_errors():
        subs, _ = await store.page(cursor=None, limit=100)
        chosen = next((s for s in subs if s.id == sub), subs[0] if subs else None)
        log_entries = (await store.log_page(chosen.id, cursor=None, limit=50))[0] if chosen else []
    context = {
        **base(principal, "webhooks"),
        "subs": subs,
        "chosen": chosen,
        "log": log_entries,
    }
    return render(request, "webhooks.html", context)
