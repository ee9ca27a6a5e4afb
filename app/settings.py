"""One `Settings` class for the whole service, read from the environment and `.env`.

Every variable is prefixed ``SWITCHBOARD_`` (e.g. ``SWITCHBOARD_REDIS_URL``). Every
timeout and limit the service uses lives here with a default that suits real phone
traffic. Outside ``env=dev`` the class refuses default secrets and turned-off signature
checks; production also refuses placeholders (``change-me``, the values of
``deploy/switchboard.env.example``) and secrets shorter than ``MIN_SECRET_CHARS``, and
needs an https public base URL, a real account SID and a Realtime API key.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Auth token used in dev so the simulator and the server agree without configuration.
DEV_TWILIO_AUTH_TOKEN = "dev-twilio-auth-token"
#: Account SID used in dev (``AC`` + 32 hex digits, the Twilio shape).
DEV_TWILIO_ACCOUNT_SID = "AC" + "0" * 32

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Values that are placeholders, not secrets (deploy/switchboard.env.example ships some):
#: refused in production, compared case-insensitively after stripping.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "change_me",
        "sk-change-me",
        "secret",
        "password",
        "test",
        "test-key",
        "xxx",
        DEV_TWILIO_AUTH_TOKEN,
    }
)
#: Shortest secret accepted in production (Twilio auth tokens are 32 hex digits; OpenAI
#: and Azure keys are at least as long).
MIN_SECRET_CHARS = 32

#: Premium-rate and high-cost destinations inside +1 that transfers refuse unless a
#: ``transfer_allowed_numbers`` pattern lists them: +1 900/976 premium lines and the NANP
#: area codes of Caribbean countries and Bermuda (billed as international; the classic
#: toll-fraud targets). US territories (787, 939, 340, 671, ...) are not in it.
DEFAULT_REFUSED_PREFIXES = (
    "+1900",
    "+1976",
    # Bahamas, Barbados, Anguilla, Antigua, BVI, Cayman, Bermuda, Grenada, Turks and
    # Caicos, Jamaica, Montserrat, Sint Maarten, St Lucia, Dominica, St Vincent,
    # Dominican Republic, Trinidad and Tobago, St Kitts and Nevis.
    "+1242",
    "+1246",
    "+1264",
    "+1268",
    "+1284",
    "+1345",
    "+1441",
    "+1473",
    "+1649",
    "+1658",
    "+1664",
    "+1721",
    "+1758",
    "+1767",
    "+1784",
    "+1809",
    "+1829",
    "+1849",
    "+1868",
    "+1869",
    "+1876",
)

_NUMBER_PATTERN = re.compile(r"^\+[0-9?]{1,15}\*?$")


def _split_list(value: Any) -> Any:
    """A list setting from the environment: JSON (``["a","b"]``) or comma-separated."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _secret_problem(name: str, value: SecretStr | None) -> str | None:
    raw = value.get_secret_value().strip() if value is not None else ""
    if raw.lower() in PLACEHOLDER_SECRETS or "change-me" in raw.lower():
        return f"SWITCHBOARD_{name} must be set (it is empty or a placeholder)"
    if len(raw) < MIN_SECRET_CHARS:
        return f"SWITCHBOARD_{name} is too short (at least {MIN_SECRET_CHARS} characters)"
    return None


class Environment(StrEnum):
    dev = "dev"
    test = "test"
    production = "production"


class RealtimeDialect(StrEnum):
    """Which Realtime wire dialect to speak (docs/protocols.md §1 "Connecting")."""

    openai_ga = "openai-ga"
    openai_beta = "openai-beta"
    azure_ga = "azure-ga"
    azure_beta = "azure-beta"


class _Group(BaseModel):
    """A group of settings: ``Settings.<group>.<name>``, from ``SWITCHBOARD_<GROUP>_<NAME>``
    (the same variable names as flat settings; unknown names are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class RealtimeSettings(_Group):
    """The Realtime leg: ``SWITCHBOARD_REALTIME_*`` (docs/protocols.md §1)."""

    dialect: RealtimeDialect = RealtimeDialect.openai_ga
    #: Full WebSocket URL. Default: OpenAI when a key is set, else the local engine.
    url: str | None = None
    api_key: SecretStr | None = None
    model: str = "gpt-realtime"
    connect_timeout_ms: int = Field(5000, ge=100)
    #: Largest Realtime server event accepted (bytes; a ``response.output_audio.delta`` of
    #: a long reply is base64 of up to seconds of audio); larger closes the socket (1009).
    max_message_bytes: int = Field(1 << 24, ge=64 * 1024, le=1 << 28)
    #: Messages queued to the Realtime socket before the leg is taken as stalled.
    send_queue_max: int = Field(2000, ge=10)
    #: Time allowed to reconnect after the Realtime socket dropped (from the drop).
    reconnect_s: float = Field(4.0, ge=0, le=60)
    #: Waits (ms) before the reconnect attempts after a drop, the last one repeating
    #: (env: a JSON list). Short steps: a restarted peer is back in use soon after it listens.
    reconnect_backoff_ms: list[int] = Field(
        default_factory=lambda: [0, 100, 250, 500], min_length=1, max_length=20
    )
    #: A WebSocket ping to the Realtime peer every this many ms; with no frame at all
    #: from it for ``liveness_ms`` the session is taken as lost and replaced (well under
    #: the websockets keepalive's 40 s).
    ping_interval_ms: int = Field(1000, ge=100, le=60_000)
    liveness_ms: int = Field(3000, ge=300, le=120_000)
    #: Realtime session length cap (minutes) per dialect family: the service closes a
    #: GA session at 60 min, a beta or Azure preview one at 30 (docs/protocols.md §1
    #: "Session"). A call rolls over to a new session ``rollover_margin_s`` before it, at
    #: a quiet moment, and at the latest ``rollover_grace_ms`` after that, quiet or not.
    session_cap_ga_min: float = Field(60.0, gt=0)
    session_cap_beta_min: float = Field(30.0, gt=0)
    rollover_margin_s: float = Field(120.0, ge=0)
    rollover_grace_ms: int = Field(60_000, ge=0, le=3_600_000)
    #: ``response.create`` requests a call queues while one response is active (the
    #: session runs one at a time); past it a request is refused (``QueueFull``).
    max_pending_responses: int = Field(8, ge=1, le=100)
    #: Conversation items a call keeps to replay into a new session (reconnect, rollover,
    #: a transfer's return); the oldest go first.
    replay_max_items: int = Field(200, ge=10, le=10_000)


class MediaSettings(_Group):
    """The media-plane listener: ``SWITCHBOARD_MEDIA_*`` (``app.call.media_server``)."""

    #: The listener (Twilio Media Streams WebSockets, ``switchboard serve``): its bind
    #: address (default: ``host``) and port. Behind a reverse proxy, route
    #: ``/twilio/media`` of the public host to it (``deploy/nginx.conf``).
    host: str | None = None
    port: int = Field(8001, ge=0, le=65535)
    #: The ``<Stream url>`` Twilio connects to (and signs). Default: the public base URL's
    #: host + ``/twilio/media`` (``wss://`` for https), through the reverse proxy; when the
    #: public base URL is a loopback address (no proxy: dev, tests), that host on
    #: ``port`` (``ws://127.0.0.1:8001/twilio/media``).
    public_url: str | None = None
    #: Time a media connection has to complete its WebSocket upgrade request.
    handshake_timeout_ms: int = Field(5000, ge=100)
    #: Largest WebSocket frame the listener parses at all (bytes); a bigger frame closes
    #: the connection (1009). Messages between this and ``carrier_max_message_bytes`` are
    #: dropped as malformed and the call goes on.
    max_frame_bytes: int = Field(1 << 20, ge=1024, le=1 << 26)


class AdminSettings(_Group):
    """Admin API and operator-page logins: ``SWITCHBOARD_ADMIN_*``."""

    #: Failed admin auth attempts allowed per client IP per window; beyond it: 429.
    auth_fail_max: int = Field(20, ge=1)
    auth_fail_window_s: int = Field(300, ge=1)
    #: Lifetime of an operator-page login (its HttpOnly cookie and Redis session).
    session_ttl_s: int = Field(12 * 3600, ge=60)


class DialerSettings(_Group):
    """Outbound campaigns (``app.dialer``): ``SWITCHBOARD_DIALER_*``; times in ms unless
    named otherwise."""

    #: Run a dialer inside `switchboard serve`; `switchboard dialer` processes may run too
    #: (any number, sharing Redis).
    enabled: bool = True
    #: How long a claimed attempt is reserved for its dialer before others may take it back.
    lease_ms: int = Field(30_000, ge=100)
    #: After a dial, how long without any word from the carrier before it counts as lost.
    dial_grace_ms: int = Field(60_000, ge=100)
    #: Time past ring timeout + time limit before a silent call is looked up at the carrier.
    call_grace_ms: int = Field(120_000, ge=100)
    #: Longest pause between dialer passes (new retries and freed slots are seen within it).
    poll_ms: int = Field(1000, ge=10)
    #: Calls per second for the whole account, all campaigns and dialers (Twilio default: 1).
    account_cps: float = Field(1.0, gt=0, le=1000)
    #: `calls.create` requests one dialer process may have outstanding.
    max_pending_dials: int = Field(16, ge=1, le=1000)
    #: Timeout of one Twilio REST request made for campaigns (s).
    rest_timeout_s: float = Field(10.0, gt=0)
    #: Heartbeat period of a dialer in ``dialer:instances`` (listing only).
    heartbeat_ms: int = Field(5000, ge=100)
    #: Rows accepted in one contact import, and the largest import body (bytes).
    max_import_rows: int = Field(100_000, ge=1)
    max_import_bytes: int = Field(20 * 1024 * 1024, ge=1024)


#: The groups of ``Settings`` (field name → model); ``Settings(media_port=0)`` and
#: ``SWITCHBOARD_MEDIA_PORT=0`` both set ``Settings.media.port``.
GROUPS: dict[str, type[_Group]] = {
    "realtime": RealtimeSettings,
    "media": MediaSettings,
    "admin": AdminSettings,
    "dialer": DialerSettings,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        # SWITCHBOARD_MEDIA_PUBLIC_URL → media.public_url: one split, after the group.
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    env: Environment = Environment.dev
    log_level: str = "INFO"
    log_json: bool = True

    # --- HTTP server -----------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    #: Base URL Twilio reaches us on. Webhook signatures are checked against URLs
    #: rebuilt from this, never from the Host header a proxy forwards.
    public_base_url: str = "http://127.0.0.1:8000"

    # --- Twilio ----------------------------------------------------------------------
    twilio_account_sid: str = DEV_TWILIO_ACCOUNT_SID
    twilio_auth_token: SecretStr = SecretStr(DEV_TWILIO_AUTH_TOKEN)
    #: Twilio REST base URL; point at the carrier simulator offline. In dev with the dev
    #: account SID it defaults to the simulator on ``simulator_port``.
    twilio_api_base_url: str | None = None
    #: Loopback port of the carrier simulator's fake Twilio REST API (`switchboard call`).
    simulator_port: int = 8766
    #: Validate ``X-Twilio-Signature``. May be turned off only in dev.
    validate_signatures: bool = True
    #: Also validate ``X-Twilio-Signature`` on the media WebSocket upgrade (computed over
    #: the ``wss://`` stream URL, no parameters; Twilio "Media Streams: WebSocket
    #: security"), before the socket is accepted. May be turned off only in dev; the
    #: per-call token is always checked as well.
    validate_ws_signature: bool = True
    #: Timeout of one Twilio REST request for live call control (hang-up, transfer; s).
    carrier_rest_timeout_s: float = Field(10.0, gt=0, le=120)

    # --- Realtime --------------------------------------------------------------------
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    #: Seconds a call may run before it is ended (Realtime sessions are capped by the service).
    max_call_duration_s: int = Field(3600, ge=10)

    # --- Local engine ----------------------------------------------------------------
    engine_host: str = "127.0.0.1"
    engine_port: int = 8765
    #: Scripted scenario the engine replies from (issue 2); None: the built-in demo.
    engine_scenario: Path | None = None

    # --- Redis -----------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix for every key (see README "Redis key scheme"); tests use their own.
    redis_prefix: str = "sb:"
    retention_days: int = Field(30, ge=1)
    #: Where call recordings go (``app.store.objects``): ``file://<dir>``, relative to
    #: the project directory unless absolute, or ``s3://bucket/prefix`` (optionally
    #: ``?endpoint_url=http://host:port`` for a non-AWS S3). Never Redis.
    recordings_url: str = "file://recordings"
    #: Longest recording kept per call (s of audio per track; the rest is not recorded).
    recording_max_s: int = Field(4 * 3600, ge=60)
    #: How often (s) recordings past the retention (``retention_days``) are deleted.
    recording_sweep_interval_s: float = Field(3600.0, gt=0, le=86_400)
    #: Who records a flow's calls: ``twilio`` (the Recordings API on the live call, dual
    #: channel), ``local`` (the bridge writes both tracks), ``auto``: Twilio's when the
    #: REST API is Twilio's own (``twilio_api_base_url`` unset), else local.
    recording_source: Literal["auto", "local", "twilio"] = "auto"
    #: Per-call store writes queued before the writer; beyond it writes are counted as dropped.
    store_queue_max: int = Field(10_000, ge=100)
    store_flush_timeout_ms: int = Field(3000, ge=100)
    #: A call's store write that fails because Redis is unreachable is retried, the queue
    #: behind it waiting in order, with a backoff from ``store_retry_initial_ms`` doubling
    #: to ``store_retry_max_ms``, until Redis has been unreachable this long (s).
    store_outage_s: float = Field(30.0, ge=0, le=3600)
    store_retry_initial_ms: int = Field(50, ge=1, le=60_000)
    store_retry_max_ms: int = Field(1000, ge=1, le=60_000)
    #: Stream entries (transcript, routing, tools, events) a live call keeps in memory to
    #: write its record again if Redis comes back without it; beyond it the oldest go.
    store_journal_max: int = Field(5000, ge=0, le=1_000_000)

    # --- Media stream ----------------------------------------------------------------
    media: MediaSettings = Field(default_factory=MediaSettings)
    #: Lifetime of the one-time stream token handed out in TwiML.
    stream_token_ttl_s: int = Field(30, ge=1)
    #: Largest carrier WebSocket message accepted (bytes); larger frames are dropped.
    carrier_max_message_bytes: int = Field(64 * 1024, ge=1024)
    #: How long (ms) a closing WebSocket (either leg) waits for the peer's close frame
    #: before the TCP connection is dropped (RFC 6455 §7.1.1).
    ws_close_timeout_ms: int = Field(2000, ge=10, le=60_000)
    #: Time allowed between WebSocket accept and a valid ``start`` message.
    stream_start_timeout_ms: int = Field(5000, ge=100)
    #: Inbound audio buffered while the Realtime leg connects (ms of 8 kHz μ-law).
    inbound_buffer_ms: int = Field(2000, ge=100)
    #: Outbound messages queued to the carrier before the call is considered stalled.
    carrier_send_queue_max: int = Field(2000, ge=10)
    #: How far (ms) a mark echo may lag the playhead estimate before it is taken as a
    #: playback stall and the playhead re-anchored on it (echoes lag by network latency).
    playback_stall_tolerance_ms: int = Field(60, ge=0, le=2000)
    #: Deadline for a pending hang-up/transfer when no playback mark comes back.
    call_action_grace_ms: int = Field(10_000, ge=100)
    #: Deadline for a call's tasks to finish once its sockets were aborted (shutdown past
    #: the drain, the media listener closing); past it they are cancelled.
    call_close_timeout_ms: int = Field(3000, ge=100)
    #: DTMF digits closer together than this (ms) are one entry (``CallSession``).
    dtmf_gap_ms: int = Field(1500, ge=100, le=10_000)
    #: Shutdown: how long live calls may drain before they are cut.
    shutdown_drain_s: float = Field(20.0, ge=0)
    #: Shutdown: after SIGTERM, how long (ms) webhooks and media streams still arriving are
    #: served (a load balancer needs a moment to see /readyz answer 503) before refusal.
    drain_grace_ms: int = Field(5000, ge=0, le=120_000)
    #: Shutdown: what the carrier says to calls still live at the drain deadline before it
    #: hangs up, and how long (s) those calls get to end after it.
    shutdown_line: str = Field(
        "We're sorry, we have to end this call now. Please call back in a moment.",
        min_length=1,
        max_length=500,
    )
    shutdown_goodbye_s: float = Field(10.0, ge=0, le=120)

    # --- Reliability: the Realtime leg and dead air (README "Reliability") -----------------
    #: Longest the caller may be left in silence by a fault (no Realtime session: connect
    #: failing, ``session.update`` refused, reconnect budget spent) before the flow's
    #: fallback runs (an apology through the carrier, then a transfer or hang-up).
    dead_air_max_ms: int = Field(5000, ge=500, le=60_000)
    #: A carrier that stops playing (no mark echo for this long past when the audio
    #: before it should have played) ends the call; other calls are unaffected.
    carrier_stall_ms: int = Field(10_000, ge=1000, le=300_000)

    # --- Tools and transfers -----------------------------------------------------------
    tool_timeout_ms: int = Field(5000, ge=10)
    #: Let `transfer_call` take an E.164 number the model names instead of a flow's named
    #: `transfer_targets`. The number must still match ``transfer_allowed_numbers``.
    allow_transfer_to_any_number: bool = False
    #: Numbers a transfer (operator or model) may go to besides the call's flow's named
    #: targets: E.164 patterns, ``?`` one digit, a trailing ``*`` any rest
    #: (``+15550109999``, ``+1555010????``, ``+44*``). Env: JSON list or comma-separated.
    transfer_allowed_numbers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Prefixes refused as premium-rate or high-cost unless an allowed pattern lists the
    #: number (default: +1 900/976 and the NANP Caribbean/Pacific area codes).
    transfer_refused_prefixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_REFUSED_PREFIXES)
    )
    #: Country prefixes counted as domestic; a number outside them is international and
    #: refused unless an allowed pattern lists it.
    transfer_home_prefixes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["+1"])
    #: A warm transfer's ``<Dial timeout>``: seconds the target rings before it counts as
    #: no answer (a flow's ``transfer.ring_timeout_s`` overrides it).
    transfer_ring_timeout_s: int = Field(20, ge=1, le=600)
    #: Seconds the target has to press the decline key after the briefing
    #: (``<Gather timeout>``); no key press connects the call.
    transfer_decline_wait_s: int = Field(3, ge=1, le=60)
    #: How long a warm transfer's hand-off (the conversation so far, the briefing) is kept
    #: in Redis for the whisper and ``<Dial action>`` callbacks (s).
    transfer_handoff_ttl_s: int = Field(3600, ge=60, le=86_400)
    flows_dir: Path = PROJECT_ROOT / "flows"

    # --- Admin API and operator page ---------------------------------------------------
    admin: AdminSettings = Field(default_factory=AdminSettings)
    #: Seconds between live-call registry heartbeats; entries expire after 3 missed beats.
    live_heartbeat_s: float = Field(2.0, gt=0, le=60)
    #: Seconds between runs of the orphan reaper: calls whose registry entry expired (their
    #: instance died) are closed with ``end_reason="instance lost"`` by a surviving instance.
    live_reap_interval_s: float = Field(2.0, gt=0, le=300)
    #: How long a live-call command waits for the instance holding the call to answer.
    control_timeout_ms: int = Field(3000, ge=100)
    #: Start-up: how long (ms) to wait for the control channel's subscription before
    #: serving anyway (it keeps retrying on its own when Redis is slow or down).
    control_ready_timeout_ms: int = Field(2000, ge=0, le=60_000)
    #: ``/readyz``: how long (ms) each dependency check (Redis ping, a TCP connect to the
    #: Realtime endpoint) may take before it counts as unreachable.
    readyz_timeout_ms: int = Field(1000, ge=50, le=30_000)
    #: Candidate calls one ``GET /admin/calls`` page may examine before it returns early
    #: with a cursor (bounds the work of a filter combination that matches few calls).
    calls_scan_budget: int = Field(5000, ge=100)
    #: Token prices in USD per 1M tokens for the cost estimate (gpt-realtime list prices).
    price_text_input_per_1m: float = Field(4.0, ge=0)
    price_cached_input_per_1m: float = Field(0.4, ge=0)
    price_audio_input_per_1m: float = Field(32.0, ge=0)
    price_text_output_per_1m: float = Field(16.0, ge=0)
    price_audio_output_per_1m: float = Field(64.0, ge=0)

    # --- Outbound dialer (app/dialer) ---------------------------------------------------
    dialer: DialerSettings = Field(default_factory=DialerSettings)

    # --- Request limits and exposure ---------------------------------------------------
    #: Largest request body (bytes) anywhere unless a route allows more (contact imports:
    #: ``dialer.max_import_bytes``); checked before parsing, 413 beyond it.
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    #: Largest Twilio webhook body (bytes; Twilio's are a few KB).
    max_webhook_body_bytes: int = Field(64 * 1024, ge=1024)
    #: Largest flow file (bytes) for validation and reload (413 / a reload problem).
    flow_max_bytes: int = Field(64 * 1024, ge=1024)
    #: Deepest YAML nesting and most YAML nodes (scalars, mappings, sequences) in a flow;
    #: aliases (``*ref``) a flow may use.
    flow_max_depth: int = Field(20, ge=2, le=200)
    flow_max_nodes: int = Field(4000, ge=100)
    flow_max_aliases: int = Field(50, ge=0)
    #: Wall time allowed for parsing and validating one flow text, or a whole reload (ms).
    flow_parse_timeout_ms: int = Field(5000, ge=50)
    #: Serve ``/docs``, ``/redoc`` and ``/openapi.json``. Default: on except in production.
    docs_enabled: bool | None = None
    #: Serve ``/metrics`` without an admin key. Default: open except in production (there
    #: it needs a read key unless this is true, or use ``metrics_port``).
    metrics_public: bool | None = None
    #: Also serve Prometheus metrics, unauthenticated, on this port of ``metrics_host``
    #: (a separate listener for the scraper; 0 = none).
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    #: Addresses (IPs or CIDRs) of reverse proxies whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` are believed (client IP for auth limits and the audit trail).
    #: Empty: none; the peer address is the client. Env: JSON list or comma-separated.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- Audit trail -------------------------------------------------------------------
    #: Days admin writes are kept in the audit stream.
    audit_retention_days: int = Field(365, ge=1)

    # --- Events, webhooks, post-call analysis, search (README "Webhooks") --------------
    #: Events kept in the events stream (``XADD MAXLEN ~``) for the consumers to read.
    events_stream_max: int = Field(100_000, ge=100)
    #: A consumer's unacknowledged entry (its instance died) is taken over after this long.
    #: Keep it well above ``webhook_timeout_ms`` and ``analysis_timeout_ms``.
    events_claim_idle_ms: int = Field(120_000, ge=100)
    #: How long a consumer waits on an empty stream before looking again (ms).
    events_poll_ms: int = Field(1000, ge=10, le=60_000)
    #: Run the webhook, analysis and search consumers in this process.
    events_workers_enabled: bool = True
    #: Shutdown: how long (ms) a stopping consumer waits for its read loop and for work in
    #: flight (analyses; webhook deliveries get their own timeout on top); the rest is
    #: cancelled and stays pending for another instance to take over.
    events_stop_grace_ms: int = Field(5000, ge=0, le=120_000)
    #: One webhook request's deadline (connect to last byte).
    webhook_timeout_ms: int = Field(5000, ge=100, le=60_000)
    #: Deliveries in flight at once per instance.
    webhook_concurrency: int = Field(8, ge=1, le=256)
    #: First retry after this long; each further one waits twice as long, up to
    #: ``webhook_retry_max_ms``; after ``webhook_retry_window_s`` the delivery is dead.
    webhook_retry_base_ms: int = Field(10_000, ge=10)
    webhook_retry_max_ms: int = Field(3_600_000, ge=10)
    webhook_retry_window_s: int = Field(86_400, ge=1)
    webhook_max_subscriptions: int = Field(100, ge=1, le=10_000)
    #: Delivery log entries kept per subscription.
    webhook_log_max: int = Field(1000, ge=10)
    #: Dead-lettered deliveries kept.
    webhook_dead_max: int = Field(10_000, ge=10)
    #: Where webhooks may go: ``public`` (global addresses only: no loopback, private,
    #: link-local or reserved ones), ``loopback`` (127.0.0.0/8 and ::1 only) or ``any``.
    #: Unset: ``public`` in production, ``loopback`` elsewhere.
    webhook_destinations: Literal["public", "loopback", "any"] | None = None
    #: Post-call analysis (per flow ``analysis:``): how long one may take, how many run
    #: at once per instance, how much transcript it reads (characters, newest kept).
    analysis_timeout_ms: int = Field(60_000, ge=100)
    analysis_concurrency: int = Field(2, ge=1, le=64)
    analysis_max_transcript_chars: int = Field(24_000, ge=500)
    #: The Realtime model used for analysis with OpenAI (unset: the call's model).
    analysis_model: str | None = None
    #: A call still live when its analysis comes up is looked at again after this long.
    analysis_wait_ms: int = Field(2000, ge=10)
    #: Distinct words indexed per call for transcript search.
    search_max_terms_per_call: int = Field(400, ge=10, le=10_000)
    #: Calls a search examines per page (like ``calls_scan_budget``).
    search_scan_budget: int = Field(20_000, ge=100)

    @model_validator(mode="before")
    @classmethod
    def _group_flat_names(cls, data: Any) -> Any:
        """Keywords named like the variables (``media_port=0``) set the group's field;
        they win over the environment, as keywords do."""
        if not isinstance(data, dict):
            return data
        for group in GROUPS:
            prefix = f"{group}_"
            flat = {k[len(prefix) :]: data.pop(k) for k in list(data) if k.startswith(prefix)}
            if flat:
                given = data.get(group) or {}
                if isinstance(given, BaseModel):
                    given = given.model_dump()
                data[group] = {**given, **flat}
        return data

    @field_validator(
        "transfer_allowed_numbers",
        "transfer_refused_prefixes",
        "transfer_home_prefixes",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("transfer_allowed_numbers", "transfer_refused_prefixes")
    @classmethod
    def _number_patterns(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _NUMBER_PATTERN.match(p)]
        if bad:
            raise ValueError(f"not E.164 patterns (+digits, ?, trailing *): {bad}")
        return value

    @field_validator("transfer_home_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not re.fullmatch(r"\+[0-9]{1,6}", p)]
        if bad:
            raise ValueError(f"not country prefixes (+ and 1-6 digits): {bad}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: not an IP address or CIDR: {item!r}") from None
        return value

    @property
    def docs_open(self) -> bool:
        """Whether the OpenAPI document and its pages are served."""
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.env is not Environment.production

    @property
    def metrics_open(self) -> bool:
        """Whether ``/metrics`` on the main port answers without an admin key."""
        if self.metrics_public is not None:
            return self.metrics_public
        return self.env is not Environment.production

    @property
    def webhook_policy(self) -> Literal["public", "loopback", "any"]:
        """``webhook_destinations``, or its default for the environment."""
        if self.webhook_destinations is not None:
            return self.webhook_destinations
        return "public" if self.env is Environment.production else "loopback"

    @property
    def is_dev(self) -> bool:
        return self.env is Environment.dev

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Self:
        if self.env is Environment.dev:
            return self
        problems: list[str] = []
        production = self.env is Environment.production
        if not production and self.twilio_auth_token.get_secret_value() in (
            "",
            DEV_TWILIO_AUTH_TOKEN,
        ):
            problems.append("SWITCHBOARD_TWILIO_AUTH_TOKEN must be set")
        if not self.validate_signatures:
            problems.append("SWITCHBOARD_VALIDATE_SIGNATURES may be false only in dev")
        if not self.validate_ws_signature:
            problems.append("SWITCHBOARD_VALIDATE_WS_SIGNATURE may be false only in dev")
        if production:
            parts = urlsplit(self.public_base_url)
            if parts.scheme != "https" or parts.hostname in (None, "127.0.0.1", "localhost"):
                problems.append("SWITCHBOARD_PUBLIC_BASE_URL must be a public https URL")
            for name, value in (
                ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                ("REALTIME_API_KEY", self.realtime.api_key),
            ):
                problem = _secret_problem(name, value)
                if problem:
                    problems.append(problem)
            if not re.fullmatch(r"AC[0-9a-fA-F]{32}", self.twilio_account_sid) or (
                self.twilio_account_sid == DEV_TWILIO_ACCOUNT_SID
            ):
                problems.append("SWITCHBOARD_TWILIO_ACCOUNT_SID must be set (AC and 32 hex digits)")
        if problems:
            raise ValueError(f"refusing to start in {self.env} mode: " + "; ".join(problems))
        return self

    @property
    def media_stream_url(self) -> str:
        """The media stream's public URL (``<Stream url>``, no query string): see
        ``media.public_url``."""
        if self.media.public_url:
            return self.media.public_url
        parts = urlsplit(self.public_base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        host = parts.hostname or ""
        if host in ("localhost", "::1") or host.startswith("127."):
            host = f"[{host}]" if ":" in host else host
            return f"{scheme}://{host}:{self.media.port}/twilio/media"
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/twilio/media"

    def public_url(self, path: str) -> str:
        """Absolute public URL of ``path`` (used for signature checks and callbacks)."""
        return self.public_base_url.rstrip("/") + path

    @property
    def twilio_rest_base_url(self) -> str | None:
        """Where Twilio REST calls go: the configured URL, the simulator in dev, else Twilio."""
        if self.twilio_api_base_url:
            return self.twilio_api_base_url
        if self.is_dev and self.twilio_account_sid == DEV_TWILIO_ACCOUNT_SID:
            return f"http://127.0.0.1:{self.simulator_port}"
        return None

    @property
    def uses_local_engine(self) -> bool:
        return self.realtime.url is None and self.realtime.api_key is None


def variable_names() -> list[str]:
    """Every environment variable the settings read (``SWITCHBOARD_RETENTION_DAYS``, a
    group's ``SWITCHBOARD_MEDIA_PORT``, ...), in the order of the class."""
    names: list[str] = []
    for name in Settings.model_fields:
        group = GROUPS.get(name)
        subs = [f"{name}_{sub}" for sub in group.model_fields] if group else [name]
        names += [f"SWITCHBOARD_{sub.upper()}" for sub in subs]
    return names


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
