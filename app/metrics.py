"""Prometheus metrics (``/metrics``), all prefixed ``switchboard_``.

Counters are updated off the per-frame hot path where possible (malformed frames only on
the error branch; audio frames counted in per-call totals added at call end).

With several worker processes (``switchboard serve --workers N``) every worker writes its
samples to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode,
chosen when the variable is set before ``prometheus_client`` is imported: ``serve`` sets
it for its workers), and a scrape, whichever worker answers it, reads them all
(``exposition``): counters and histograms summed over the workers, gauges summed over
the live ones (``livesum``), so what Prometheus sees never jumps between workers.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

#: The environment variable of prometheus_client's multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory the workers share their samples in, or None (one process)."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (if needed) and empty it of earlier runs' sample files, before any
    worker starts: stale files would add a previous run's counts. Returns the path."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def registry() -> CollectorRegistry:
    """What a scrape reads: every worker's samples in multiprocess mode, else this
    process's registry."""
    if multiprocess_dir() is None:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


def exposition() -> bytes:
    """The Prometheus text exposition of ``registry()``."""
    return generate_latest(registry())


def worker_exit(pid: int | None = None) -> None:
    """Forget a worker's live gauges when it stops (multiprocess mode only; a no-op else)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]


ACTIVE_CALLS = Gauge(
    "switchboard_active_calls", "Calls with a bridged media stream", multiprocess_mode="livesum"
)
CALLS = Counter("switchboard_calls_total", "Calls ended", ["direction", "outcome"])
WEBHOOKS = Counter("switchboard_webhooks_total", "Carrier webhooks", ["endpoint", "result"])
MALFORMED = Counter(
    "switchboard_malformed_messages_total", "Malformed or oversized wire messages", ["leg"]
)
UNKNOWN_EVENTS = Counter("switchboard_unknown_events_total", "Unknown wire events", ["leg"])
STREAM_REJECTED = Counter(
    "switchboard_stream_rejected_total", "Media streams closed before bridging", ["reason"]
)
BARGE_INS = Counter("switchboard_barge_ins_total", "Caller interruptions (clear sent)")
TOOL_CALLS = Counter("switchboard_tool_calls_total", "Tool invocations", ["tool", "result"])
TOOL_LATENCY = Histogram(
    "switchboard_tool_duration_seconds",
    "Tool run time",
    ["tool"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
TURN_LATENCY = Histogram(
    "switchboard_turn_latency_seconds",
    "End of caller speech to first agent audio sent to the carrier",
    buckets=(0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2, 3, 5),
)
REALTIME_ERRORS = Counter("switchboard_realtime_errors_total", "Realtime `error` events")
REALTIME_DISCONNECTS = Counter(
    "switchboard_realtime_disconnects_total", "Realtime sockets lost mid-call"
)
REALTIME_CONNECT_FAILURES = Counter(
    "switchboard_realtime_connect_failures_total", "Realtime sockets that could not be opened"
)
REALTIME_LIVENESS_TIMEOUTS = Counter(
    "switchboard_realtime_liveness_timeouts_total",
    "Realtime peers silent past realtime_liveness_ms (answered no ping)",
)
REALTIME_RECONNECTS = Counter(
    "switchboard_realtime_reconnects_total", "Realtime sessions replaced mid-call (reconnected)"
)
FALLBACKS = Counter(
    "switchboard_fallbacks_total", "Calls handed to the flow's fallback (no Realtime session)"
)
CARRIER_STALLS = Counter(
    "switchboard_carrier_stalls_total", "Calls ended because the carrier stopped playing"
)
FRAMES = Counter("switchboard_media_frames_total", "Media messages relayed", ["direction"])
STORE_DROPPED = Counter("switchboard_store_dropped_total", "Store writes dropped (queue full)")
STORE_RETRIES = Counter(
    "switchboard_store_retries_total", "Store write attempts repeated after a Redis error"
)
STORE_FAILED = Counter(
    "switchboard_store_failed_total",
    "Store writes given up (Redis unreachable past store_outage_s, or a permanent error)",
)
STORE_RESTORED = Counter(
    "switchboard_store_restored_total",
    "Live call records written again after Redis came back without them",
)
STORE_UNRESTORABLE = Counter(
    "switchboard_store_unrestorable_total",
    "Stream entries Redis lost that the call's journal no longer held (store_journal_max)",
)
CALLS_REAPED = Counter(
    "switchboard_calls_reaped_total",
    "Calls closed for an instance that died (end_reason 'instance lost')",
)

# --- admin API and live control -------------------------------------------------------------
ADMIN_AUTH_FAILURES = Counter(
    "switchboard_admin_auth_failures_total",
    "Rejected admin requests by reason (missing, malformed, unknown, bad_secret, revoked,"
    " session, csrf, scope, rate_limited)",
    ["reason"],
)
CONTROL_COMMANDS = Counter(
    "switchboard_control_commands_total",
    "Operator commands on live calls (hangup, transfer, say) by result",
    ["command", "result"],
)
FLOW_RELOADS = Counter("switchboard_flow_reloads_total", "Flow reloads by result", ["result"])

# --- outbound dialer (updated by app/dialer) ------------------------------------------------
DIALER_ATTEMPTS = Counter(
    "switchboard_dialer_attempts_total",
    "Outbound call attempts by campaign and result (placed, answered, busy, no_answer,"
    " failed, blocked_dnc, ...)",
    ["campaign", "result"],
)
DIALER_CPS = Gauge(
    "switchboard_dialer_cps",
    "Outbound calls placed per second (recent rate)",
    ["campaign"],
    multiprocess_mode="livesum",
)
DIALER_CPS_LIMIT = Gauge(
    "switchboard_dialer_cps_limit",
    "Configured outbound calls-per-second ceiling",
    ["campaign"],
    multiprocess_mode="livemax",
)

# --- HTTP API (app.api.http_metrics) ---------------------------------------------------------
HTTP_REQUESTS = Counter(
    "switchboard_http_requests_total",
    "HTTP requests by method, route template (unmatched: no route) and status code",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "switchboard_http_request_duration_seconds",
    "HTTP request handling time, to the end of the response body",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
