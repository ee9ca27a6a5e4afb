"""Call listing and call details for the admin API and the operator page.

``list_calls`` pages through ``CallStore.query_calls`` (index walks bounded by
``Settings.calls_scan_budget``) and marks calls live from the live registry.
``call_detail`` gathers a call's record, streams, usage, cost estimate and turn latency.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from app.admin.cursor import decode_cursor, encode_cursor
from app.admin.live import live_call, live_sids
from app.admin.schemas import (
    CallDetail,
    CallEvent,
    CallPage,
    CallSummary,
    CostEstimate,
    LiveCallInfo,
    RoutingDecision,
    StatusChange,
    TokenUsage,
    ToolCallRecord,
    TranscriptLine,
    TurnLatency,
)
from app.phone import normalize

if TYPE_CHECKING:
    from app.services import Services
    from app.settings import Settings

_MAX_MS = 2**53 - 1


@dataclass(frozen=True, slots=True)
class CallFilters:
    """Listing filters; ``None`` means "any". Times are epoch ms, inclusive."""

    since_ms: int | None = None
    until_ms: int | None = None
    direction: str | None = None
    flow: str | None = None
    status: str | None = None
    number: str | None = None
    campaign: str | None = None

    def index_filters(self) -> dict[str, str]:
        """The indexed ones as ``CallStore.query_calls`` filters (number normalised).

        Raises ``ValueError`` when ``number`` is not a phone number.
        """
        out = {
            name: value
            for name in ("direction", "flow", "status", "campaign")
            if (value := getattr(self, name))
        }
        if self.number:
            out["number"] = normalize(self.number)
        return out


def to_ms(moment: datetime | None) -> int | None:
    """Epoch ms of a datetime (naive = UTC), clamped to [0, 2**53)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        value = int(moment.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        value = 0 if moment.year < 1970 else _MAX_MS
    return min(max(value, 0), _MAX_MS)


def _opt_int(record: dict[str, Any], name: str) -> int | None:
    value = record.get(name)
    return value if isinstance(value, int) else None


def summary(record: dict[str, Any], live: bool) -> CallSummary:
    """The listing view of a ``CallStore.get_call`` record."""
    created = _opt_int(record, "created_at_ms") or 0
    ended = _opt_int(record, "ended_at_ms")
    return CallSummary(
        call_sid=str(record.get("call_sid", "")),
        direction=str(record.get("direction", "")),
        flow=str(record.get("flow", "")),
        status=str(record.get("status", "")),
        carrier_status=record.get("carrier_status"),
        from_masked=str(record.get("from_masked", "")),
        to_masked=str(record.get("to_masked", "")),
        campaign=record.get("campaign") or None,
        created_at_ms=created,
        started_at_ms=_opt_int(record, "started_at_ms"),
        ended_at_ms=ended,
        duration_s=round((ended - created) / 1000, 1) if ended and created else None,
        end_reason=record.get("end_reason") or None,
        total_tokens=_opt_int(record, "total_tokens") or 0,
        live=live,
    )


async def list_calls(
    services: Services, filters: CallFilters, *, cursor: str | None, limit: int
) -> CallPage:
    """One page of calls newest first. Raises ``ValueError`` (bad number or cursor) and
    ``StoreError``."""
    after = decode_cursor(cursor) if cursor else None
    records, position = await services.store.query_calls(
        filters=filters.index_filters(),
        since_ms=filters.since_ms,
        until_ms=filters.until_ms,
        after=after,
        limit=limit,
        budget=services.settings.calls_scan_budget,
    )
    live = await live_sids(
        services.redis, services.keys, [str(r.get("call_sid", "")) for r in records]
    )
    return CallPage(
        items=[summary(r, str(r.get("call_sid", "")) in live) for r in records],
        next_cursor=encode_cursor(*position) if position else None,
    )


def usage_of(record: dict[str, Any]) -> TokenUsage:
    def n(name: str) -> int:
        value = record.get(name, 0)
        return value if isinstance(value, int) and value > 0 else 0

    cached = min(n("cached_tokens"), n("input_tokens"))
    audio_in = min(n("input_audio_tokens"), n("input_tokens") - cached)
    return TokenUsage(
        responses=n("responses"),
        total_tokens=n("total_tokens"),
        input_tokens=n("input_tokens"),
        output_tokens=n("output_tokens"),
        input_audio_tokens=n("input_audio_tokens"),
        output_audio_tokens=n("output_audio_tokens"),
        cached_tokens=n("cached_tokens"),
        input_text_tokens=max(0, n("input_tokens") - cached - audio_in),
        output_text_tokens=max(0, n("output_tokens") - n("output_audio_tokens")),
    )


def estimate_cost(usage: TokenUsage, settings: Settings) -> CostEstimate:
    """Price ``usage`` with the ``price_*_per_1m`` settings (USD per 1M tokens)."""
    prices = {
        "text_input": settings.price_text_input_per_1m,
        "cached_input": settings.price_cached_input_per_1m,
        "audio_input": settings.price_audio_input_per_1m,
        "text_output": settings.price_text_output_per_1m,
        "audio_output": settings.price_audio_output_per_1m,
    }
    cached = min(usage.cached_tokens, usage.input_tokens)
    audio_in = min(usage.input_audio_tokens, usage.input_tokens - cached)
    tokens = {
        "text_input": usage.input_text_tokens,
        "cached_input": cached,
        "audio_input": audio_in,
        "text_output": usage.output_text_tokens,
        "audio_output": min(usage.output_audio_tokens, usage.output_tokens),
    }
    breakdown = {k: round(tokens[k] * prices[k] / 1_000_000, 6) for k in prices}
    return CostEstimate(
        total_usd=round(sum(breakdown.values()), 6),
        breakdown_usd=breakdown,
        prices_per_1m=prices,
    )


def turn_latency(record: dict[str, Any]) -> TurnLatency:
    """Stats of the record's ``turn_latencies_ms`` (JSON list written at call end)."""
    try:
        values = [int(v) for v in orjson.loads(str(record.get("turn_latencies_ms") or "[]"))]
    except (orjson.JSONDecodeError, TypeError, ValueError):
        values = []
    if not values:
        return TurnLatency(
            turns_ms=[], count=0, mean_ms=None, p50_ms=None, p95_ms=None, max_ms=None
        )
    ordered = sorted(values)

    def rank(p: float) -> int:  # nearest-rank percentile
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return TurnLatency(
        turns_ms=values,
        count=len(values),
        mean_ms=round(sum(values) / len(values), 1),
        p50_ms=rank(0.5),
        p95_ms=rank(0.95),
        max_ms=ordered[-1],
    )


async def call_detail(services: Services, call_sid: str) -> CallDetail | None:
    """Everything about a call, or None when there is no record. Raises ``StoreError``."""
    store = services.store
    record = await store.get_call(call_sid)
    if record is None:
        return None
    live = await live_call(services.redis, services.keys, call_sid)
    usage = usage_of(record)
    statuses = []
    for s in await store.statuses(call_sid):
        extra = {k: str(v) for k, v in s.items() if k not in ("id", "status", "at_ms")}
        statuses.append(
            StatusChange(id=s["id"], status=str(s.get("status", "")), at_ms=s["at_ms"], extra=extra)
        )
    return CallDetail(
        call=summary(record, live is not None),
        record={k: v for k, v in record.items() if isinstance(v, str | int)},
        transcript=[TranscriptLine(**t) for t in await store.transcript(call_sid)],
        routing=[RoutingDecision(**r) for r in await store.routing(call_sid)],
        tool_calls=[ToolCallRecord(**t) for t in await store.tool_calls(call_sid)],
        statuses=statuses,
        events=[
            CallEvent(
                id=e["id"],
                kind=e["kind"],
                at_ms=e["at_ms"],
                fields={k: str(v) for k, v in e.items() if k not in ("id", "kind", "at_ms")},
            )
            for e in await store.events(call_sid)
        ],
        usage=usage,
        cost=estimate_cost(usage, services.settings),
        turn_latency=turn_latency(record),
        live=LiveCallInfo(**_live_dict(live)) if live is not None else None,
    )


def _live_dict(live: Any) -> dict[str, Any]:
    return {name: getattr(live, name) for name in LiveCallInfo.model_fields}


def live_info(live: Any) -> LiveCallInfo:
    """A ``LiveCallInfo`` from an ``app.admin.live.LiveCall``."""
    return LiveCallInfo(**_live_dict(live))


def _clock(offset_ms: int) -> str:
    seconds = max(0, offset_ms) / 1000
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def transcript_text(detail: CallDetail) -> str:
    """The transcript as plain text: a header, then ``[mm:ss.s] Caller|Agent: text`` lines
    (an interrupted agent turn ends with ``[interrupted]``)."""
    call = detail.call
    started = datetime.fromtimestamp(call.created_at_ms / 1000, tz=UTC)
    lines = [
        f"Call {call.call_sid}",
        f"{call.direction} {call.from_masked} -> {call.to_masked}, flow {call.flow}",
        f"Started {started.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
        + (f", ended: {call.end_reason}" if call.end_reason else ""),
        "",
    ]
    for t in detail.transcript:
        who = "Caller" if t.role == "user" else "Agent" if t.role == "assistant" else t.role
        mark = " [interrupted]" if t.interrupted else ""
        lines.append(f"[{_clock(t.offset_ms)}] {who}: {t.text}{mark}")
    return "\n".join(lines) + "\n"


def now_ms() -> int:
    return time.time_ns() // 1_000_000
