"""What the sans-I/O call session asks its I/O layer (the bridge) to do.

The session never touches a socket, Redis or a clock of its own: every handler returns a
list of these actions, executed in order by ``app.call.bridge``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.call.conversation import Entry


@dataclass(frozen=True, slots=True)
class SendCarrier:
    """Send ``text`` on the carrier socket. ``control`` messages (``clear``) go first."""

    text: str
    control: bool = False


@dataclass(frozen=True, slots=True)
class SendRealtime:
    text: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """One ``function_call`` output item taken from ``response.done``."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class RunTools:
    calls: tuple[FunctionCall, ...]


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call ``session.on_timer(name)`` after ``delay_ms``; restarting replaces the old one."""

    name: str
    delay_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call through the carrier's REST API (audio already played)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move the call to ``to_number`` (E.164 or ``sip:``) with ``<Dial>`` (audio already
    played). ``mode`` ``cold``: a plain ``<Dial>``; ``warm`` (``app.carrier.warm``): ring
    the target with ``<Dial action><Number url>``, brief whoever answers with ``briefing``
    (``decline_key`` refuses), ``ring_timeout_s`` the ``<Dial timeout>``; ``entries`` the
    conversation so far, for the agent to resume with, ``offset_ms`` into the call."""

    to_number: str
    reason: str
    mode: str = "cold"
    briefing: str = ""
    decline_key: str = ""
    ring_timeout_s: int = 0
    entries: tuple[Entry, ...] = ()
    offset_ms: int = 0


@dataclass(frozen=True, slots=True)
class ConnectRealtime:
    """Open a (new) Realtime socket; report back with ``CallSession.on_realtime_open`` or
    ``on_realtime_connect_failed``."""


@dataclass(frozen=True, slots=True)
class CloseRealtime:
    """Close the current Realtime socket on purpose (``reason``: ``rollover``,
    ``session_expired``); its late events must not reach the session. The session has
    already planned the reconnect (a ``reconnect`` timer)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Fallback:
    """The Realtime leg cannot be had: end the stream and let the carrier speak ``line``
    (TwiML ``<Say>``), then ``<Dial>`` ``target`` or hang up when it is empty."""

    line: str
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class SecureDigits:
    """Digits taken by ``collect_digits`` (``app.call.keypad``), for the call's digit
    sink only: never logged, stored or sent to the model (``repr`` hides them)."""

    call_id: str
    purpose: str
    digits: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OpenListener:
    """A ``collect_digits`` capture takes spoken digits: open a listen-only Realtime
    session (``app.call.listener``) and send it the caller's audio until ``CloseListener``;
    its transcripts come back to the session as ``on_spoken``."""


@dataclass(frozen=True, slots=True)
class CloseListener:
    """The capture ended: close the listen-only session."""


@dataclass(frozen=True, slots=True)
class StartRecording:
    """The flow records the call: start the carrier's recording when it is the one that
    records (``Settings.recording_source``); the bridge's own recorder runs from the start."""


# --- store operations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreTranscript:
    role: str
    text: str
    item_id: str
    offset_ms: int
    interrupted: bool


@dataclass(frozen=True, slots=True)
class StoreRouting:
    flow: str
    reason: str
    target: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class StoreToolCall:
    name: str
    call_id: str
    arguments: str
    result: dict[str, Any]
    error: str | None
    duration_ms: float
    at_ms: int


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """A call event beside the transcript (``kind``: ``realtime_lost``,
    ``realtime_reconnected``, ``rollover``, ``fallback``; ``fields`` such as
    ``reconnect_ms``), at ``at_ms`` ms into the call."""

    kind: str
    fields: dict[str, str | int]
    at_ms: int


@dataclass(frozen=True, slots=True)
class StoreUsage:
    usage: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoreCallFields:
    fields: dict[str, str | int | float]


StoreOp = StoreTranscript | StoreRouting | StoreToolCall | StoreUsage | StoreCallFields | StoreEvent


@dataclass(frozen=True, slots=True)
class Store:
    op: StoreOp


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the call's log (the bridge adds ``call_sid``); ``counter`` names a metric."""

    level: str
    message: str
    counter: str | None = None


Action = (
    SendCarrier
    | SendRealtime
    | RunTools
    | StartTimer
    | CancelTimer
    | Hangup
    | Transfer
    | ConnectRealtime
    | CloseRealtime
    | Fallback
    | SecureDigits
    | OpenListener
    | CloseListener
    | StartRecording
    | Store
    | Log
)
