"""Flows: what an agent says and may do on a call, one YAML file per flow.

A flow names the numbers it answers, the Realtime instructions and voice, the
``server_vad`` settings, the tools it may call and how tool waits are filled.
``FlowCatalog.load(dir)`` reads ``*.yaml`` from a folder; ``route(to_number)``
picks a flow for a called number and says why (the routing decision).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import FlowFileError as FlowFileError  # defined in the one tree, named here
from flows.analysis import AnalysisSettings

FLOWS_DIR = Path(__file__).resolve().parent


class VadSettings(BaseModel):
    """``server_vad`` turn detection (docs/protocols.md §1 "Session")."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = Field(300, ge=0, le=5000)
    silence_duration_ms: int = Field(500, ge=100, le=10_000)
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = Field(None, ge=5000, le=30_000)


class TranscriptionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "whisper-1"
    language: str | None = "en"
    prompt: str | None = None


class FillerSettings(BaseModel):
    """Short lines spoken while a tool runs longer than ``delay_ms``."""

    model_config = ConfigDict(extra="forbid")

    delay_ms: int = Field(1000, ge=0, le=30_000)
    lines: list[str] = Field(default_factory=lambda: ["One moment while I check that."])


class FallbackSettings(BaseModel):
    """What the carrier does when no Realtime session can be had (connect failed,
    ``session.update`` refused, reconnect budget spent): speak ``line`` (TwiML ``<Say>``),
    then transfer to ``transfer_to`` (a name in ``transfer_targets`` or E.164) or hang up."""

    model_config = ConfigDict(extra="forbid")

    line: str = Field(
        "Sorry, we're having technical trouble and can't continue this call right now. "
        "Please call back in a few minutes.",
        min_length=1,
        max_length=500,
    )
    transfer_to: str | None = None


class CollectDigitsSettings(BaseModel):
    """Secure keypad capture (the ``collect_digits`` tool, ``app.call.keypad``): the
    digits go to the flow's digit sink, never to the model, the transcript or the logs.
    Timeouts in ms; ``check: luhn`` rejects card numbers that fail the Luhn check;
    ``pattern`` is a regular expression the whole entry must match."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        "Please enter the number on your keypad, then press the pound key.",
        min_length=1,
        max_length=300,
    )
    retry_prompt: str = Field(
        "Sorry, that didn't work. Please enter it again, then press the pound key.",
        min_length=1,
        max_length=300,
    )
    max_digits: int = Field(19, ge=1, le=32)
    min_digits: int = Field(1, ge=1, le=32)
    finish_on_key: Literal["#", "*", ""] = "#"
    first_digit_timeout_ms: int = Field(15_000, ge=1000, le=120_000)
    inter_digit_timeout_ms: int = Field(5000, ge=500, le=60_000)
    retries: int = Field(2, ge=0, le=5)
    check: Literal["luhn"] | None = None
    pattern: str | None = Field(None, max_length=200)
    #: Also take digits the caller says ("four two oh seven"): while the capture runs, a
    #: listen-only Realtime session transcribes the caller (``app.call.listener``); the
    #: agent's model never hears them. A spoken entry ends the attempt like the finish key.
    spoken: bool = False

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        import re

        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from exc
        return v


class SendDtmfSettings(BaseModel):
    """Keypad tones out (the ``send_dtmf`` tool, ``app.call.dtmf``): each key's tone and
    the pause after it, in ms (ITU-T Q.24: at least 40 ms each)."""

    model_config = ConfigDict(extra="forbid")

    tone_ms: int = Field(100, ge=40, le=1000)
    gap_ms: int = Field(100, ge=40, le=2000)


class RecordingSettings(BaseModel):
    """Call recording (README "Call recording"): ``off``, or ``on`` with ``consent_line``
    spoken first (before the greeting). Offline the bridge writes both tracks to a stereo
    WAV in the recordings store (``Settings.recordings_url``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "on"] = "off"
    consent_line: str = Field(
        "This call is recorded for quality and training.", min_length=1, max_length=300
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_bool(cls, v: object) -> object:
        """YAML 1.1 reads a bare ``on``/``off`` as a boolean."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class WarmTransferLines(BaseModel):
    """What the agent says when a warm transfer comes back to it, by what happened."""

    model_config = ConfigDict(extra="forbid")

    no_answer: str = Field(
        "They didn't answer. I'm back with you; how else can I help?", min_length=1, max_length=300
    )
    busy: str = Field(
        "That line is busy right now. I'm back with you; how else can I help?",
        min_length=1,
        max_length=300,
    )
    declined: str = Field(
        "They can't take the call right now. I'm back with you; how else can I help?",
        min_length=1,
        max_length=300,
    )
    failed: str = Field(
        "I couldn't get through. I'm back with you; how else can I help?",
        min_length=1,
        max_length=300,
    )


class TransferSettings(BaseModel):
    """How ``transfer_call`` and the operator's transfer move a call (README "Warm
    transfer"): ``mode`` is the default, ``cold`` (a plain ``<Dial>``) or ``warm`` (ring
    the target, brief whoever answers, come back to the agent when nobody takes it).
    ``decline_key``: the key the target presses during the briefing to refuse the call;
    ``ring_timeout_s``: the ``<Dial timeout>`` (None: ``Settings.transfer_ring_timeout_s``);
    ``hold_line``: what the agent says before dialling on an operator's warm transfer."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["cold", "warm"] = "cold"
    decline_key: str = Field("9", pattern=r"^[0-9*#]$")
    ring_timeout_s: int | None = Field(None, ge=1, le=600)
    hold_line: str = Field("Please hold while I connect you.", min_length=1, max_length=300)
    lines: WarmTransferLines = Field(default_factory=WarmTransferLines)

    @field_validator("decline_key", mode="before")
    @classmethod
    def _digit(cls, v: object) -> object:
        """YAML reads a bare ``9`` as an integer."""
        return str(v) if isinstance(v, int) else v


class ToolHints(BaseModel):
    """What a flow can say about a tool to help the local engine (examples, synonyms)."""

    model_config = ConfigDict(extra="forbid")

    examples: list[str] = Field(default_factory=list)
    synonyms: dict[str, list[str]] = Field(default_factory=dict)
    reply: str | None = None


class Flow(BaseModel):
    """One flow file. Unknown keys are errors so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    direction: Literal["inbound", "outbound", "any"] = "any"
    #: Called numbers (E.164) this flow answers.
    numbers: list[str] = Field(default_factory=list)
    default: bool = False
    instructions: str
    voice: str = "alloy"
    #: When set the agent speaks first with this line.
    greeting: str | None = None
    vad: VadSettings = Field(default_factory=VadSettings)
    transcription: TranscriptionSettings | None = Field(default_factory=TranscriptionSettings)
    tools: list[str] = Field(default_factory=list)
    tool_hints: dict[str, ToolHints] = Field(default_factory=dict)
    #: Per-tool timeouts in ms; others use the service default.
    tool_timeouts_ms: dict[str, int] = Field(default_factory=dict)
    #: Named transfer targets (E.164, or a ``sip:`` URI), e.g. ``{"sales": "+15550001111"}``.
    transfer_targets: dict[str, str] = Field(default_factory=dict)
    #: Cold or warm by default, the decline key and ring timeout of a warm transfer.
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    filler: FillerSettings = Field(default_factory=FillerSettings)
    fallback: FallbackSettings = Field(default_factory=FallbackSettings)
    #: Secure keypad capture rules when ``collect_digits`` is in ``tools``.
    collect_digits: CollectDigitsSettings = Field(default_factory=CollectDigitsSettings)
    #: Keypad tones out when ``send_dtmf`` is in ``tools``.
    send_dtmf: SendDtmfSettings = Field(default_factory=SendDtmfSettings)
    #: Call recording: off, or on with a consent line first.
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    #: Said by the agent after its Realtime session was replaced mid-call (none: it just
    #: goes on).
    reconnect_line: str | None = None
    #: Post-call analysis (``flows.analysis``): summary and structured fields.
    analysis: AnalysisSettings | None = None
    max_output_tokens: int | Literal["inf"] = "inf"
    temperature: float | None = None

    @field_validator("numbers")
    @classmethod
    def _e164(cls, v: list[str]) -> list[str]:
        from app.phone import is_e164

        bad = [n for n in v if not is_e164(n)]
        if bad:
            raise ValueError(f"numbers must be E.164: {bad}")
        return v


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (a pydantic error location)."""
    line = None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def parse_flow(text: str, source: str = "<flow>") -> Flow:
    """Parse and validate one flow's YAML text.

    Raises ``FlowFileError`` with line numbers for YAML syntax and schema errors.
    """
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise FlowFileError(source, [(mark.line + 1 if mark else None, str(exc))]) from exc
    if not isinstance(data, dict):
        raise FlowFileError(source, [(1, "a flow file must be a mapping")])
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        errors = [
            (_line_of(node, tuple(err["loc"])), f"{'.'.join(map(str, err['loc']))}: {err['msg']}")
            for err in exc.errors()
        ]
        raise FlowFileError(source, errors) from exc


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Which flow answers a call and why. ``reason``: ``number_match`` or ``default``."""

    flow: str
    reason: str
    number: str


class FlowCatalog:
    """The loaded flows, indexed by called number, with one default."""

    def __init__(self, flows: dict[str, Flow]) -> None:
        if not flows:
            raise ValueError("no flows loaded")
        self.flows = flows
        self._by_number = {n: f for f in flows.values() for n in f.numbers}
        defaults = [f for f in flows.values() if f.default]
        if len(defaults) > 1:
            raise ValueError(f"more than one default flow: {[f.name for f in defaults]}")
        self.default = defaults[0] if defaults else next(iter(flows.values()))

    @classmethod
    def load(cls, directory: Path = FLOWS_DIR) -> FlowCatalog:
        """Load every ``*.yaml`` in ``directory``; ``FlowFileError`` on the first bad file."""
        flows: dict[str, Flow] = {}
        for path in sorted(directory.glob("*.yaml")):
            flow = parse_flow(path.read_text(), str(path))
            if flow.name in flows:
                raise FlowFileError(str(path), [(None, f"duplicate flow name {flow.name!r}")])
            flows[flow.name] = flow
        return cls(flows)

    def get(self, name: str) -> Flow | None:
        return self.flows.get(name)

    def route(self, to_number: str) -> tuple[Flow, RoutingDecision]:
        """Pick the flow for a called number: exact E.164 match, else the default."""
        flow = self._by_number.get(to_number)
        if flow is not None:
            return flow, RoutingDecision(flow.name, "number_match", to_number)
        return self.default, RoutingDecision(self.default.name, "default", to_number)
