"""Response and request models of the admin API (also rendered by the operator page).

Times are Unix epoch milliseconds (``*_ms``), durations seconds (``*_s``) unless named
``*_ms``; money is USD. Phone numbers appear only masked (``+155****0123``).

Every listing answers one shape, ``Page``: ``{"items": [...], "next_cursor": ...}``. Pass
``next_cursor`` back as the ``cursor`` query parameter for the next page; it is null on
the last page. Cursors are opaque and stay valid while entries are added or removed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, model_validator

from app.analysis.model import CallAnalysis

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing (see the module docstring)."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class CallDirection(StrEnum):
    """Who placed the call: the caller (``inbound``) or Switchboard (``outbound``)."""

    inbound = "inbound"
    outbound = "outbound"


class CallSummary(BaseModel):
    """One call in a listing."""

    call_sid: str
    direction: str
    flow: str
    status: str
    carrier_status: str | None = None
    from_masked: str
    to_masked: str
    campaign: str | None = None
    created_at_ms: int
    started_at_ms: int | None = None
    ended_at_ms: int | None = None
    duration_s: float | None = Field(None, description="ended_at - created_at, seconds")
    end_reason: str | None = None
    total_tokens: int = 0
    live: bool = Field(False, description="In progress on some instance right now")


class CallPage(Page[CallSummary]):
    """Calls, newest first. A page may be shorter than ``limit`` while ``next_cursor`` is
    set (the scan budget was spent); ``next_cursor`` is null at the end."""


class TranscriptLine(BaseModel):
    id: str
    role: str = Field(description="user or assistant")
    text: str
    item_id: str
    offset_ms: int = Field(description="ms since the media stream started")
    interrupted: bool = Field(description="The caller cut the agent off in this turn")


class RoutingDecision(BaseModel):
    id: str
    flow: str
    reason: str
    target: str = Field(description="flow:<name> or a masked transfer number")
    at_ms: int


class ToolCallRecord(BaseModel):
    id: str
    name: str
    call_id: str
    arguments: str = Field(description="JSON the model sent (numbers masked)")
    result: Any = Field(description="JSON result given back to the model (numbers masked)")
    error: str | None
    duration_ms: float
    at_ms: int


class StatusChange(BaseModel):
    id: str
    status: str
    at_ms: int
    extra: dict[str, str] = Field(default_factory=dict)


class TokenUsage(BaseModel):
    """Realtime token usage summed over the call's responses."""

    responses: int = 0
    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    cached_tokens: int = 0
    input_text_tokens: int = Field(0, description="input - audio input - cached, ≥ 0")
    output_text_tokens: int = Field(0, description="output - audio output, ≥ 0")


class CostEstimate(BaseModel):
    """Estimated cost from the usage and the configured prices (USD per 1M tokens).

    Cached input is priced at the cached rate whatever its modality; the rest of the
    input is split into audio and text by the reported audio token count.
    """

    currency: Literal["USD"] = "USD"
    total_usd: float
    breakdown_usd: dict[str, float]
    prices_per_1m: dict[str, float]


class TurnLatency(BaseModel):
    """End of caller speech → first agent audio sent, per answered turn (ms)."""

    turns_ms: list[int]
    count: int
    mean_ms: float | None
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None


class LiveCallInfo(BaseModel):
    """A call in progress (from the cross-instance registry)."""

    call_sid: str
    instance: str = Field(description="The Switchboard process bridging the call")
    flow: str
    direction: str
    from_masked: str
    to_masked: str
    state: str = Field(description="awaiting_start, connecting, active, ending")
    started_at_ms: int
    heartbeat_ms: int


class LiveCallPage(Page[LiveCallInfo]):
    """Calls in progress on every instance, newest first (one page: ``next_cursor`` null)."""


class CallEvent(BaseModel):
    """A call event beside the transcript: ``realtime_lost``, ``realtime_reconnected``
    (with ``reconnect_ms``), ``rollover``, ``fallback`` (README "Reliability")."""

    id: str
    kind: str
    at_ms: int = Field(description="ms into the call")
    fields: dict[str, str] = Field(default_factory=dict, description="e.g. reason, reconnect_ms")


class CallDetail(BaseModel):
    """Everything stored about one call."""

    call: CallSummary
    record: dict[str, str | int] = Field(description="The raw call record (no raw numbers)")
    transcript: list[TranscriptLine]
    routing: list[RoutingDecision]
    tool_calls: list[ToolCallRecord]
    statuses: list[StatusChange]
    events: list[CallEvent] = Field(default_factory=list)
    usage: TokenUsage
    cost: CostEstimate
    turn_latency: TurnLatency
    live: LiveCallInfo | None = None
    analysis: CallAnalysis | None = Field(
        None, description="The post-call analysis, once made (flows with an analysis section)"
    )


# --- live control ------------------------------------------------------------------------


class HangupRequest(BaseModel):
    reason: str = Field("operator", min_length=1, max_length=200)


class TransferRequest(BaseModel):
    """Exactly one of ``to`` (a phone number) or ``target`` (a named target of the
    call's flow, e.g. ``human``)."""

    to: str | None = Field(None, max_length=32, examples=["+15550109999"])
    target: str | None = Field(None, max_length=64, examples=["human"])
    reason: str = Field("operator", min_length=1, max_length=200)
    mode: Literal["cold", "warm"] | None = Field(
        None,
        description=(
            "cold: hand the call over now; warm: the agent says the flow's hold line, the"
            " target is rung and briefed, and the caller comes back to the agent when"
            ' nobody takes it (README "Warm transfer"). Absent: the flow\'s'
            " transfer.mode."
        ),
    )

    @model_validator(mode="after")
    def _one_destination(self) -> TransferRequest:
        if (self.to is None) == (self.target is None):
            raise ValueError("give exactly one of 'to' and 'target'")
        return self


class SayRequest(BaseModel):
    text: str = Field(min_length=1, max_length=1000, examples=["Please hold for a moment."])


class CommandResult(BaseModel):
    call_sid: str
    command: Literal["hangup", "transfer", "say"]
    detail: str
    instance: str = Field(description="The instance that performed it")
    data: dict[str, Any] = Field(default_factory=dict)


# --- flows -------------------------------------------------------------------------------


class FlowSummary(BaseModel):
    name: str
    description: str
    direction: str
    default: bool
    numbers: list[str]
    voice: str
    tools: list[str]
    transfer_targets: list[str] = Field(description="Named transfer targets")


class FlowPage(Page[FlowSummary]):
    """The loaded flows by name (one page: ``next_cursor`` null); ``default`` marks the
    one used when no number matches."""


class FlowProblemModel(BaseModel):
    file: str
    line: int | None = Field(description="1-based line, when known")
    message: str


class FlowValidateRequest(BaseModel):
    yaml: str = Field(
        min_length=1,
        max_length=256 * 1024,
        description="The flow file's YAML text",
        examples=["name: demo\ninstructions: Be brief.\n"],
    )


class FlowValidation(BaseModel):
    valid: bool
    flow: FlowSummary | None
    errors: list[FlowProblemModel]


class FlowReload(BaseModel):
    """``ok`` false: nothing changed; ``problems`` says why."""

    ok: bool
    flows: list[str]
    added: list[str]
    removed: list[str]
    changed: list[str]
    problems: list[FlowProblemModel]
    notified_instances: int = Field(0, description="Other instances told to reload")
    code: str | None = Field(None, description="`flows_invalid` when rejected (422)")


# --- DNC ---------------------------------------------------------------------------------


class DncEntryModel(BaseModel):
    entry_id: str = Field(description="SHA-256 of the E.164 number")
    number_masked: str
    reason: str
    added_at_ms: int
    added_by: str


class DncPage(Page[DncEntryModel]):
    """Do-not-call entries, newest first."""


class DncAddRequest(BaseModel):
    number: str = Field(min_length=3, max_length=32, examples=["+15555550123"])
    reason: str = Field("", max_length=200)


# --- keys ----------------------------------------------------------------------------------


class WhoAmI(BaseModel):
    key_id: str
    name: str
    scope: Literal["read", "write"]
    via: Literal["header", "session"]


class KeyOut(BaseModel):
    """An admin API key as stored: never its secret."""

    key_id: str = Field(description="Public id (12 hex digits): the `sbk_<key_id>_…` part")
    name: str
    scope: Literal["read", "write"]
    active: bool
    created_at_ms: int
    last_used_ms: int | None = Field(description="Refreshed at most once a minute")
    revoked_at_ms: int | None


class KeyPage(Page[KeyOut]):
    """Admin keys, newest first (revoked ones included)."""


class KeyCreate(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[\w .@:/+-]{1,64}$",
        description="A label for people: letters, digits, spaces or _.@:/+-",
        examples=["crm sync"],
    )
    scope: Literal["read", "write"] = "read"


class KeyCreated(BaseModel):
    """A new key. ``secret`` is the full key, shown this once: Switchboard keeps only its
    SHA-256 and can never show it again."""

    key: KeyOut
    secret: str = Field(description="The whole key, `sbk_<key_id>_<secret>`: store it now")


# --- webhooks ------------------------------------------------------------------------------

_EVENTS_DOC = (
    "Event types to send: call.started, call.ended, call.analyzed, transfer.completed,"
    " campaign.contact_finished, campaign.finished; or ['*'] for all"
)


class WebhookOut(BaseModel):
    """A webhook subscription (its secret only as a hint)."""

    id: str = Field(description="wh_<12 hex>")
    url: str
    events: list[str]
    description: str
    enabled: bool
    secret_hint: str = Field(description="The secret's last characters, to tell secrets apart")
    created_at_ms: int
    updated_at_ms: int


class WebhookPage(Page[WebhookOut]):
    """Webhook subscriptions, newest first."""


class WebhookCreate(BaseModel):
    url: str = Field(
        min_length=8,
        max_length=2048,
        description="http(s) URL receiving POSTs; production allows public addresses only",
        examples=["https://crm.example.com/hooks/switchboard"],
    )
    events: list[str] = Field(
        min_length=1, max_length=20, description=_EVENTS_DOC, examples=[["call.ended"]]
    )
    description: str = Field("", max_length=200)
    enabled: bool = True


class WebhookUpdate(BaseModel):
    """Only the fields given change; ``rotate_secret`` makes a new secret (shown once)."""

    url: str | None = Field(None, min_length=8, max_length=2048)
    events: list[str] | None = Field(None, min_length=1, max_length=20, description=_EVENTS_DOC)
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None
    rotate_secret: bool = False


class WebhookCreated(BaseModel):
    """A subscription with its signing secret, shown this once (and after a rotation)."""

    webhook: WebhookOut
    secret: str | None = Field(
        description="HMAC-SHA256 key of Switchboard-Signature (whsec_…); null unless new"
    )


class DeliveryOut(BaseModel):
    """One delivery attempt. ``outcome``: delivered (2xx), retry (failed, another attempt
    at ``next_at_ms``), dead (given up after the retry window, or the destination was
    refused)."""

    id: str = Field(description="Log entry id")
    at_ms: int
    event_id: str
    type: str
    attempt: int
    outcome: Literal["delivered", "retry", "dead", "skipped"] | str
    status: int = Field(description="The receiver's HTTP status (0: no answer)")
    error: str
    duration_ms: float
    next_at_ms: int | None


class DeliveryPage(Page[DeliveryOut]):
    """A subscription's delivery attempts, newest first."""


class PingResult(BaseModel):
    event_id: str = Field(description="Id of the webhook.ping event queued for delivery")


# --- transcript search ---------------------------------------------------------------------


class TranscriptSnippet(BaseModel):
    role: str = Field(description="user (the caller) or assistant")
    text: str
    offset_ms: int = Field(description="ms since the media stream started")


class SearchHit(BaseModel):
    """A call whose transcript holds every word of the query, with the lines that match."""

    call: CallSummary
    snippets: list[TranscriptSnippet]


class SearchPage(Page[SearchHit]):
    """Matching calls, newest first. A page may be shorter than ``limit`` while
    ``next_cursor`` is set (the scan budget was spent); null at the end."""
