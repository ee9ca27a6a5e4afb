"""``switchboard call``: place a simulated call and summarise it from what Redis recorded.

The summary joins what the simulated carrier observed (turn latency, what was heard,
how the call ended) with what the server stored (transcript, tool calls, routing
decisions, token usage), so it shows the product's own record of the call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.audio import BYTES_PER_MS
from app.errors import StoreError
from app.settings import Settings
from app.store.calls import CallStore
from app.store.keys import Keys
from app.store.redis import create_redis
from switchboard_sim.call_cli import run_call
from switchboard_sim.calls import SimulatedCallResult
from switchboard_sim.dial import TargetRule

#: How long to wait for the server to finish writing the call after the stream ends (s).
RECORD_WAIT_S = 5.0


async def read_call(
    store: CallStore, call_sid: str, wait_s: float = RECORD_WAIT_S
) -> dict[str, Any]:
    """The stored record of ``call_sid`` once the server marked it ended (or after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    record = await store.get_call(call_sid)
    while (record is None or record.get("status") != "ended") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        record = await store.get_call(call_sid)
    return {
        "record": record or {},
        "transcript": await store.transcript(call_sid),
        "tool_calls": await store.tool_calls(call_sid),
        "routing": await store.routing(call_sid),
        "statuses": await store.statuses(call_sid),
    }


def tool_offset_ms(tool_call: dict[str, Any], record: dict[str, Any]) -> int | None:
    """When ``tool_call`` finished, in ms on the call's timeline (that of the transcript's
    ``offset_ms``): its wall-clock ``at_ms`` less the call record's ``created_at_ms`` (the
    voice webhook, a few ms before the media stream starts). None when either is missing."""
    try:
        return int(tool_call["at_ms"]) - int(record["created_at_ms"])
    except (KeyError, TypeError, ValueError):
        return None


def reply_after(offset_ms: int | None, transcript: list[dict[str, Any]]) -> str | None:
    """What the agent said after a tool call that finished at ``offset_ms``: the first
    assistant line whose playback started then or later (an acknowledgement spoken while
    the tool ran comes before it), or None."""
    if offset_ms is None:
        return None
    for line in sorted(transcript, key=lambda e: int(e.get("offset_ms") or 0)):
        if line.get("role") == "assistant" and int(line.get("offset_ms") or 0) >= offset_ms:
            return str(line.get("text", "")) or None
    return None


def build_summary(
    result: SimulatedCallResult, stored: dict[str, Any], out: Path | None
) -> dict[str, Any]:
    """The JSON summary printed by ``switchboard call --json``."""
    record = stored["record"]
    errors = list(result.errors)
    if result.http_status not in (None, 200):
        errors.append(f"voice webhook answered HTTP {result.http_status}")
    if not record:
        errors.append("the server stored no record of the call")
    usage_keys = ("input_tokens", "output_tokens", "total_tokens", "responses")
    return {
        "call_sid": result.call_sid,
        "stream_sid": result.stream_sid,
        "flow": record.get("flow"),
        "status": record.get("status"),
        "end_reason": record.get("end_reason"),
        "ended_by": result.ended_by,
        "transferred_to": result.transferred_to,
        "duration_ms": round(result.duration_ms),
        "transcript": [
            {k: e[k] for k in ("role", "text", "offset_ms", "interrupted") if k in e}
            for e in stored["transcript"]
        ],
        "tool_calls": [
            {
                **{k: t.get(k) for k in ("name", "arguments", "result", "error", "duration_ms")},
                "offset_ms": tool_offset_ms(t, record),
                "reply": reply_after(tool_offset_ms(t, record), stored["transcript"]),
            }
            for t in stored["tool_calls"]
        ],
        "routing": [
            {k: r.get(k) for k in ("flow", "reason", "target", "at_ms")} for r in stored["routing"]
        ],
        "usage": {k: record[k] for k in usage_keys if k in record},
        "turn_latency_ms": [None if v is None else round(v) for v in result.turn_latencies_ms],
        "agent_audio_ms": round(result.played_bytes_total / BYTES_PER_MS),
        "barge_ins": len(result.clears),
        "agent_wav": str(out) if out else None,
        "warm_transfer": _dial_summary(result),
        "errors": errors,
    }


def _dial_summary(result: SimulatedCallResult) -> dict[str, Any] | None:
    """What the transfer target's side saw of a warm transfer (``result.dial``), or None."""
    dial = result.dial
    if dial is None:
        return None
    return {
        "target": dial.target,
        "rule": dial.rule.kind,
        "dial_call_status": dial.dial_call_status,
        "target_heard": list(dial.heard),
        "pressed": dial.pressed,
        "connected": dial.connected,
        "back_to_agent": result.after_transfer is not None,
    }


async def place_call(
    settings: Settings,
    *,
    server: str,
    to: str,
    from_: str,
    wavs: list[Path],
    out: Path | None,
    max_seconds: int,
    progress: Callable[[str], None] | None = None,
    targets: dict[str, TargetRule] | None = None,
) -> dict[str, Any]:
    """Place one simulated call against ``server`` and return its summary.

    The fake Twilio REST API listens on ``Settings.simulator_port`` so the server's
    hang-up and transfer requests reach it; ``targets``: what each transfer target does
    when a warm transfer rings it. Raises nothing for call failures: they are listed
    under ``errors``.
    """
    say = progress or (lambda _line: None)
    say(f"calling {server}/twilio/voice as Twilio would (caller says {len(wavs)} thing(s))…")
    started = time.monotonic()
    result = await run_call(
        server_base_url=server,
        public_base_url=settings.public_base_url,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        rest_port=settings.simulator_port,
        to=to,
        from_=from_,
        wavs=wavs,
        out=out,
        max_duration_s=max_seconds,
        targets=targets,
    )
    say(
        f"call {result.call_sid} ended ({result.ended_by}) after {time.monotonic() - started:.1f} s"
    )
    redis = create_redis(settings.redis_url)
    try:
        stored = await read_call(
            CallStore(redis, Keys(settings.redis_prefix), 86400), result.call_sid
        )
    except StoreError as exc:
        stored = {"record": {}, "transcript": [], "tool_calls": [], "routing": [], "statuses": []}
        result.errors.append(f"could not read the call from Redis: {exc}")
    finally:
        await redis.aclose()
    return build_summary(result, stored, out)


#: Transcript roles as the summary shows them.
ROLE_NAMES = {"assistant": "agent", "user": "caller"}
#: Longest tool result shown in the text summary (characters).
MAX_RESULT_CHARS = 400


def _compact(value: Any) -> str:
    """``value`` as one line of JSON (a JSON string is parsed first); plain text as is."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    return json.dumps(value, ensure_ascii=False)


def render_tool_call(t: dict[str, Any]) -> list[str]:
    """``name(arguments) → result`` (or ``→ error …``), then the agent's reply."""
    if t.get("error"):
        outcome = f"error {t['error']}"
        if t.get("result") not in (None, {}, ""):
            outcome += f": {_compact(t['result'])}"
    else:
        outcome = _compact(t.get("result"))
    if len(outcome) > MAX_RESULT_CHARS:
        outcome = outcome[: MAX_RESULT_CHARS - 1] + "…"
    took = t.get("duration_ms")
    took_text = f"  ({took:.0f} ms)" if isinstance(took, int | float) else ""
    lines = [f"  {t['name']}({_compact(t.get('arguments') or {})}) → {outcome}{took_text}"]
    if t.get("reply"):
        lines.append(f'    agent replied: "{t["reply"]}"')
    return lines


def render_text(summary: dict[str, Any]) -> str:
    """A human-readable rendering of the summary."""
    lines = [
        f"call {summary['call_sid']}  flow={summary['flow']}  ended by {summary['ended_by']}"
        f" ({summary['end_reason']})  {summary['duration_ms'] / 1000:.1f} s",
        "",
        "transcript:",
    ]
    # One timeline: what was said (by playback start) and when each tool finished.
    timeline: list[tuple[int, str]] = []
    for e in summary["transcript"]:
        mark = " [interrupted]" if e.get("interrupted") else ""
        role = ROLE_NAMES.get(e["role"], e["role"])
        timeline.append((int(e["offset_ms"]), f"{role:>6}: {e['text']}{mark}"))
    for t in summary["tool_calls"]:
        if t.get("offset_ms") is not None:
            args = _compact(t.get("arguments") or {})
            timeline.append((int(t["offset_ms"]), f"  tool: {t['name']}({args})"))
    for at, text in sorted(timeline, key=lambda item: item[0]):
        lines.append(f"  {at / 1000:6.1f}s  {text}")
    lines += ["", "tool calls:"]
    for t in summary["tool_calls"]:
        lines += render_tool_call(t)
    if not summary["tool_calls"]:
        lines.append("  (none)")
    lines += ["", "routing decisions:"]
    for r in summary["routing"]:
        lines.append(f"  flow={r['flow']} reason={r['reason']} target={r['target']}")
    lat = [v for v in summary["turn_latency_ms"] if v is not None]
    lines += ["", f"turn latency (end of caller speech → first agent audio): {lat} ms"]
    if summary["transferred_to"]:
        lines.append(f"transferred to {summary['transferred_to']}")
    warm = summary.get("warm_transfer")
    if warm:
        lines.append(
            f"warm transfer ({warm['rule']}): DialCallStatus={warm['dial_call_status']}"
            f" connected={warm['connected']} back to the agent={warm['back_to_agent']}"
        )
        for text in warm["target_heard"]:
            lines.append(f'  the target heard: "{text}"')
    if summary["agent_wav"]:
        lines.append(f"agent audio saved to {summary['agent_wav']}")
    for err in summary["errors"]:
        lines.append(f"ERROR: {err}")
    return "\n".join(lines)
