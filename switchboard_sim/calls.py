"""The simulated call: what the caller does (:class:`CallScript`), what was observed
(:class:`SimulatedCallResult`) and the call as the fake REST API sees it (:class:`LiveCall`).

Data only, shared by inbound (:mod:`switchboard_sim.inbound`) and outbound
(:mod:`switchboard_sim.outbound`) calls, the media stream (:mod:`switchboard_sim.stream`)
and the REST fake (:mod:`switchboard_sim.rest`).
Times are milliseconds on the *call timeline*: t=0 is when ``start`` is sent; with
``CallScript.frame_interval_ms`` = 20 (the default) it is wall-clock time, a smaller
interval runs the whole call faster (frames still carry 20 ms of audio). Audio is 8 kHz
μ-law, 8 bytes per ms. Call and Stream SIDs are shaped like Twilio's (docs/protocols.md §2).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from app.audio import FRAME_MS
from switchboard_sim.playback import ClearRecord, PlayedSpan, played_ms

log = logging.getLogger(__name__)


EndReason = Literal[
    "hangup",  # REST update Status=completed (or TwiML without <Dial>)
    "transfer",  # REST update Twiml=<Dial>, or a webhook answering with <Dial>
    "redirect",  # REST update Url=
    "server_closed",  # the server closed the media WebSocket
    "caller_hangup",  # CallScript.hangup_after_ms elapsed after the last utterance
    "timeout",  # CallScript.max_duration_s passed
    "rejected",  # webhook non-2xx / no usable TwiML / WebSocket handshake refused
]

#: Bound on ``SimulatedCallResult.errors``.
MAX_ERRORS = 200


def new_call_sid() -> str:
    """A Twilio-shaped Call SID: ``CA`` + 32 hex digits."""
    return "CA" + secrets.token_hex(16)


def new_stream_sid() -> str:
    """A Twilio-shaped Stream SID: ``MZ`` + 32 hex digits."""
    return "MZ" + secrets.token_hex(16)


@dataclass
class CallScript:
    """What the simulated caller does. All times are ms on the call timeline.

    ``caller_audio``: utterances as 8 kHz μ-law bytes (8 bytes per ms), sent in
    order. Turn taking: utterance k+1 starts once the agent has played audio and
    then been silent for ``gap_ms``, or right away if the agent has not spoken for
    ``first_wait_ms`` since the call started / the previous utterance ended.
    ``barge_in_after_ms`` (one value for every utterance or a per-utterance list):
    instead of waiting for the agent to finish, start the utterance this many ms
    after agent audio started playing. ``dtmf``: ``(at_ms, digit)`` pairs.
    ``override_token``: send this ``token`` custom parameter instead of the TwiML
    one; ``reuse_token_of``: send the token another call received (replay).
    ``extra_raw_messages``: ``(at_ms, text|bytes)`` sent verbatim (text or binary
    frame). ``hangup_after_ms``: once every utterance was sent, the caller hangs
    up after the agent has been silent this long (None: stay on the line).
    ``realtime_pace``: one 160-byte frame every ``frame_interval_ms`` on an
    absolute deadline schedule with silence between utterances; False sends each
    utterance in one burst and no silence. ``frame_interval_ms`` < 20 speeds the
    whole call up (tests).
    """

    from_number: str = "+15005550006"
    to_number: str = "+15005550001"
    caller_audio: list[bytes] = field(default_factory=list)
    gap_ms: int = 700
    first_wait_ms: int = 3000
    barge_in_after_ms: int | Sequence[int | None] | None = None
    max_duration_s: float = 60
    dtmf: list[tuple[int, str]] = field(default_factory=list)
    override_token: str | None = None
    reuse_token_of: SimulatedCallResult | None = None
    extra_raw_messages: list[tuple[int, str | bytes]] = field(default_factory=list)
    hangup_after_ms: int | None = None
    realtime_pace: bool = True
    frame_interval_ms: float = FRAME_MS
    #: What the caller does once back with the agent after a warm transfer nobody took
    #: (None: stay silent, hang up 3 s after the agent stops talking).
    after_transfer: CallScript | None = None

    def __post_init__(self) -> None:
        """Raises ``ValueError`` when ``frame_interval_ms`` is not positive."""
        if self.frame_interval_ms <= 0:
            raise ValueError("frame_interval_ms must be > 0")

    def barge_in_for(self, index: int) -> int | None:
        """The barge-in delay (ms) for utterance ``index``, or None to wait for the agent."""
        b = self.barge_in_after_ms
        if b is None or isinstance(b, int):
            return b
        return b[index] if index < len(b) else None


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """One mark echoed to the server: at ``at_ms`` with ``played_bytes_total`` played.

    ``on_clear``: echoed because of a ``clear`` (its audio was not necessarily heard).
    """

    name: str
    at_ms: float
    played_bytes_total: int
    on_clear: bool


@dataclass(slots=True)
class UtteranceRecord:
    """One caller utterance as sent: start/end (ms) and bytes (8 per ms, padded to 160-byte frames).

    ``end_ms`` is when its last frame had been sent; ``first_agent_media_ms`` when
    the first agent ``media`` message arrived after that (None if none did before
    the next utterance ended or the call did).
    """

    index: int
    start_ms: float
    end_ms: float | None = None
    frames: int = 0
    first_agent_media_ms: float | None = None

    @property
    def latency_ms(self) -> float | None:
        """``first_agent_media_ms - end_ms``, or None."""
        if self.end_ms is None or self.first_agent_media_ms is None:
            return None
        return self.first_agent_media_ms - self.end_ms


#: What a transfer target does when a ``<Dial>`` rings it (:mod:`switchboard_sim.dial`).
RuleKind = Literal["answer", "no-answer", "busy", "decline"]


@dataclass(frozen=True, slots=True)
class TargetRule:
    """What a transfer target does when dialled (:mod:`switchboard_sim.dial`): ``ring_ms``
    before answering, ``talk_ms`` connected before hanging up, ``key`` pressed to decline."""

    kind: RuleKind = "answer"
    ring_ms: int = 300
    talk_ms: int = 1000
    key: str = "9"


@dataclass
class DialRecord:
    """One ``<Dial>`` as the target's side played it.

    ``heard``: the ``<Say>`` texts of the whisper TwiML (what the target heard, in order);
    ``pressed``: the key the target pressed ("" none); ``dial_call_status`` /
    ``dial_call_sid`` / ``dial_call_duration_s`` as posted to the ``<Dial action>``;
    ``action_twiml`` its answer; ``http_statuses`` each request's status by path.
    """

    target: str
    noun: str
    rule: TargetRule
    timeout_s: int
    heard: list[str] = field(default_factory=list)
    pressed: str = ""
    connected: bool = False
    dial_call_sid: str = ""
    dial_call_status: str = ""
    dial_call_duration_s: int = 0
    action_twiml: str = ""
    http_statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class SimulatedCallResult:
    """Everything observed on one simulated call (ms on the call timeline; audio 8 kHz μ-law).

    ``agent_audio``: what the caller heard, placed on the call timeline from t=0
    with silence where the agent was silent, through the end of the call (save
    with :func:`app.audio.write_wav_from_ulaw`). ``agent_audio_bytes_received``:
    decoded bytes of every outbound ``media`` payload; ``played_bytes_total``: the
    part actually played (the rest was cleared or still queued at the end).
    ``played_spans``: what was heard item by item, on the call timeline
    (:meth:`~switchboard_sim.playback.Playback.played_spans`); ``clears`` keeps, for each
    ``clear``, the ms of every item played when it arrived (:meth:`played_ms` asks the
    same of any moment).
    ``turn_latencies_ms``: one per utterance sent, see :class:`UtteranceRecord`.
    ``duration_ms``: from ``start`` to the end of the media stream (0 if none).
    """

    call_sid: str
    stream_sid: str
    from_number: str = ""
    to_number: str = ""
    twiml: str = ""
    http_status: int | None = None
    stream_url: str | None = None
    stream_parameters: dict[str, str] = field(default_factory=dict)
    agent_audio: bytes = b""
    agent_audio_bytes_received: int = 0
    played_bytes_total: int = 0
    marks_sent_back: list[str] = field(default_factory=list)
    mark_echoes: list[MarkEcho] = field(default_factory=list)
    clears: list[ClearRecord] = field(default_factory=list)
    played_spans: list[PlayedSpan] = field(default_factory=list)
    utterances: list[UtteranceRecord] = field(default_factory=list)
    turn_latencies_ms: list[float | None] = field(default_factory=list)
    ended_by: EndReason = "rejected"
    transferred_to: str | None = None
    redirect_url: str | None = None
    ws_close_code: int | None = None
    ws_close_reason: str | None = None
    frames_sent: int = 0
    dtmf_sent: list[str] = field(default_factory=list)
    #: Worst lateness of a frame behind its deadline (wall ms); shows a starved loop.
    max_send_lag_ms: float = 0.0
    status_callback_http_status: int | None = None
    errors: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    #: ``<Say>`` texts the call was updated with (the fallback's apology, a voicemail
    #: message) and when the first arrived (call timeline ms).
    said: list[str] = field(default_factory=list)
    said_at_ms: float | None = None
    #: A warm transfer's ``<Dial>`` as the target's side played it
    #: (:class:`switchboard_sim.dial.DialRecord`): what the target heard, the
    #: ``DialCallStatus`` reported; None when the call had none.
    dial: DialRecord | None = None
    #: The stream that brought the caller back to the agent after the ``<Dial>``.
    after_transfer: SimulatedCallResult | None = None

    @property
    def token(self) -> str | None:
        """The ``token`` custom parameter sent in ``start`` (None if none)."""
        return self.stream_parameters.get("token")

    def played_ms(self, item: str | None, until_ms: float | None = None) -> float:
        """Ms of ``item``'s audio the caller heard, in all or up to ``until_ms`` (call
        timeline); ``item`` as marks name it (:func:`~switchboard_sim.playback.mark_item`)."""
        return played_ms(self.played_spans, item, until_ms)

    def dtmf_heard(self) -> str:
        """The DTMF symbols in the agent audio the caller heard, in order, as an IVR's
        receiver would detect them (:func:`switchboard_sim.dtmf.detect`, Goertzel)."""
        from switchboard_sim.dtmf import detect

        return detect(self.agent_audio)

    def add_error(self, msg: str) -> None:
        """Note what went wrong (logged at debug; the first :data:`MAX_ERRORS` are kept)."""
        log.debug("call %s: %s", self.call_sid, msg)
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(msg)


@dataclass
class LiveCall:
    """A call in the simulator's registry (what the fake REST API sees and acts on)."""

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    direction: str = "inbound"
    status: str = "ringing"  # Twilio CallStatus
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    end_time: datetime | None = None
    end_reason: EndReason | None = None
    transferred_to: str | None = None
    redirect_url: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once an end was requested or happened (first reason wins)."""
    answered_by: str | None = None
    """AMD verdict of an outbound call (``human``, ``machine_end_beep``, …)."""
    said: list[str] = field(default_factory=list)
    """``<Say>`` texts of TwiML the call was updated with (a voicemail message)."""
    said_at: float | None = None
    """``loop.time()`` when the first ``<Say>`` update arrived."""
    dial_twiml: str | None = None
    """The TwiML of the ``<Dial>`` the call was updated with (a transfer)."""

    def rejoin(self) -> None:
        """The call is back on a new ``<Connect><Stream>`` after its ``<Dial>`` (a warm
        transfer's ``<Dial action>`` answer): live again, with no end requested."""
        self.ended = asyncio.Event()
        self.end_reason = None
        self.transferred_to = None
        self.redirect_url = None
        self.dial_twiml = None

    @property
    def duration_s(self) -> int | None:
        """Whole seconds from answer to end (Twilio's ``duration``), once ended."""
        if self.start_time is None or self.end_time is None:
            return None
        return int((self.end_time - self.start_time).total_seconds())

    @property
    def is_live(self) -> bool:
        """True until an end has been requested or happened."""
        return not self.ended.is_set()

    def request_end(
        self,
        reason: EndReason,
        *,
        transferred_to: str | None = None,
        redirect_url: str | None = None,
    ) -> bool:
        """Ask the call to end (the call's own tasks send ``stop`` and close the socket).

        Returns False if the call was already ending (the first reason wins).
        """
        if self.ended.is_set():
            return False
        self.end_reason = reason
        self.transferred_to = transferred_to
        self.redirect_url = redirect_url
        self.ended.set()
        return True
