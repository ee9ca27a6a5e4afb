"""Prometheus metrics (``/metrics``), all prefixed ``switchboard_``.

Counters are updated off the per-frame hot path where possible (malformed frames only on
the error branch; audio frames counted in per-call totals added at call end).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_CALLS = Gauge("switchboard_active_calls", "Calls with a bridged media stream")
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
    "switchboard_dialer_cps", "Outbound calls placed per second (recent rate)", ["campaign"]
)
DIALER_CPS_LIMIT = Gauge(
    "switchboard_dialer_cps_limit", "Configured outbound calls-per-second ceiling", ["campaign"]
)
