"""The one exception tree of Switchboard.

``SwitchboardError`` is the root. A call's end is signalled by ``CallEnded``: its
subclass ``CallCompleted`` is a clean end (the carrier said ``stop``, a tool hung up,
the call was transferred), ``CallAborted`` an abnormal one (a leg dropped, a deadline
passed). The bridge tells them apart to set the stored end reason and metrics. Where
callers have always caught ``ValueError`` (bad flow text, a bad contact file) the class
keeps ``ValueError`` as a second base.

::

    SwitchboardError
    ├── ConfigError                      settings, a flow or a tool is invalid
    │   ├── FlowFileError (ValueError)   a flow file's YAML/schema errors, with lines
    │   └── FlowTooLarge (ValueError)    a posted flow over flow_max_bytes (413)
    ├── FlowBusy                         flow work overran flow_parse_timeout_ms (503)
    ├── CodecError                       a malformed wire message (logged, counted)
    │   ├── CarrierCodecError
    │   └── RealtimeCodecError
    ├── LinkError                        one of a call's two sockets
    │   ├── LinkStalled                  the peer stopped reading (send buffer over limit)
    │   ├── LinkClosed                   the carrier socket is closed
    │   ├── RealtimeClosed               the Realtime socket is closed
    │   └── RealtimeConnectFailed        the Realtime socket could not be opened
    ├── StreamRejected                   a media stream failed its checks before start
    ├── LoginRequired                    an operator page without a login session (303)
    ├── InvalidTransition                a call state change the state machine refuses
    ├── CallEnded                        the call is over (stops its task group)
    │   ├── CallCompleted                clean: stop, hang-up, transfer
    │   └── CallAborted                  abnormal
    │       ├── RealtimeDisconnected
    │       ├── CarrierDisconnected
    │       └── RealtimeUnavailable      no Realtime session: the flow's fallback runs
    ├── QueueFull                        a bounded call-level queue is full
    ├── ToolError                        → a structured tool output for the model
    │   ├── ToolArgumentsInvalid
    │   ├── ToolTimeout
    │   ├── ToolRefused
    │   └── UnknownTool
    ├── StoreError                       Redis failed or holds an unexpected shape
    │   └── MigrationLocked              another migration run holds schema:lock
    ├── CarrierRestError                 the carrier's REST API refused or failed
    │   └── TransferRefused              the destination may not be dialled
    ├── DialerError                      campaigns and dialers
    │   ├── CampaignNotFound             (404)
    │   ├── CampaignStateError           (409)
    │   ├── ContactFileError             (400)
    │   │   └── ImportFormatError (ValueError)  the file as a whole is unreadable
    │   └── DialFailed                   calls.create failed (definite or not)
    └── AnalysisFailed                   a post-call analysis gave nothing usable (stored)

Tool-specific refusals (``tools/``: ``UnknownTarget``, ``NotCampaignCall``,
``NoAccount``) subclass ``ToolError`` next to the tool that raises them.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Root of every error Switchboard raises on purpose."""


class ConfigError(SwitchboardError):
    """Settings or a flow file are invalid."""


class FlowFileError(ConfigError, ValueError):
    """A flow file failed to parse or validate; ``errors`` lists ``(line, message)``
    (1-based lines; None where the error has no place in the file)."""

    def __init__(self, path: str, errors: list[tuple[int | None, str]]) -> None:
        self.path = path
        self.errors = errors
        text = "; ".join(f"line {ln}: {msg}" if ln else msg for ln, msg in errors)
        super().__init__(f"{path}: {text}")


class FlowTooLarge(ConfigError, ValueError):
    """A flow text over ``Settings.flow_max_bytes`` (answered 413)."""


class FlowBusy(SwitchboardError):
    """Flow work did not finish (or could not start) within ``flow_parse_timeout_ms``."""


# --- wire codecs ------------------------------------------------------------------------


class CodecError(SwitchboardError):
    """A wire message could not be decoded (malformed JSON, missing field, bad base64).

    Raised by the pure codecs; the bridge logs and counts it and the call goes on.
    """


class CarrierCodecError(CodecError):
    """A carrier (Twilio Media Streams) message was malformed."""


class RealtimeCodecError(CodecError):
    """A Realtime server event was malformed."""


# --- a call's sockets (app/call/links.py) -----------------------------------------------


class LinkError(SwitchboardError):
    """One of a call's two sockets (carrier media stream, Realtime) cannot be used."""


class LinkStalled(LinkError):
    """A peer stopped reading: the bytes waiting for it passed the link's limit."""


class LinkClosed(LinkError):
    """The carrier socket is closed (or closing): nothing can be sent on it any more."""


class RealtimeClosed(LinkError):
    """The Realtime socket is closed (or closing): nothing can be sent on it any more."""


class RealtimeConnectFailed(LinkError):
    """The Realtime socket could not be opened (refused upgrade, bad URL, protocol error)."""


# --- call lifecycle ---------------------------------------------------------------------


class StreamRejected(SwitchboardError):
    """The media stream failed its checks before any audio was bridged (no ``start`` in
    time, a bad or replayed token): closed with 1008, nothing bridged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoginRequired(SwitchboardError):
    """An operator page was asked for without a valid login session: the app answers
    303 to the login page, with this page as ``next`` (``app.web.common``)."""


class InvalidTransition(SwitchboardError):
    """A call state transition that the state machine does not allow."""


class CallEnded(SwitchboardError):
    """The call is over; raised inside a call's task group to stop its tasks."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallCompleted(CallEnded):
    """Clean end: carrier ``stop``, hang-up by tool or operator, transfer."""


class CallAborted(CallEnded):
    """Abnormal end: a leg dropped, a deadline passed, an internal fault."""


class RealtimeDisconnected(CallAborted):
    """The Realtime socket closed or failed mid-call."""


class CarrierDisconnected(CallAborted):
    """The carrier socket closed without a ``stop`` message."""


class RealtimeUnavailable(CallAborted):
    """No working Realtime session could be had (connect failed, ``session.update``
    refused, reconnect budget spent): the flow's fallback runs."""


class QueueFull(SwitchboardError):
    """A bounded call-level queue (e.g. waiting ``response.create`` requests) is full."""


# --- tools ------------------------------------------------------------------------------


class ToolError(SwitchboardError):
    """A tool could not produce a result; turned into a structured output for the model."""

    code = "tool_error"


class ToolArgumentsInvalid(ToolError):
    code = "invalid_arguments"


class ToolTimeout(ToolError):
    code = "timeout"


class ToolRefused(ToolError):
    """The tool may not run now (e.g. a second transfer in one call)."""

    code = "refused"


class UnknownTool(ToolError):
    code = "unknown_tool"


class StoreError(SwitchboardError):
    """Redis storage failed or holds data in an unexpected shape."""


class MigrationLocked(StoreError):
    """Another migration run holds ``schema:lock``."""


# --- the carrier's REST API (app/carrier/rest.py) ---------------------------------------


class CarrierRestError(SwitchboardError):
    """The carrier's REST API refused or failed a request."""


class TransferRefused(CarrierRestError):
    """The destination may not be dialled (policy or do-not-call list); nothing was sent."""


# --- outbound campaigns (app/dialer) ----------------------------------------------------


class DialerError(SwitchboardError):
    """A campaign or dialer operation failed."""


class CampaignNotFound(DialerError):
    """No campaign (or contact) with that id (answered 404)."""


class CampaignStateError(DialerError):
    """The campaign is not in a state that allows this (start twice, import into a
    finished campaign, start without a valid flow or contacts; answered 409)."""


class ContactFileError(DialerError):
    """A contact file is unreadable as a whole (answered 400); bad rows are not errors,
    they are reported row by row."""


class ImportFormatError(ContactFileError, ValueError):
    """The file as a whole is unreadable (not CSV/JSON, no phone column, too many rows)."""


class DialFailed(DialerError):
    """Placing a call through the carrier's REST API failed.

    ``definite``: the carrier answered with a refusal (HTTP 4xx), so no call exists;
    otherwise (timeout, 5xx, connection error) the call may or may not have been placed.
    ``code``: the carrier's error code when it sent one.
    """

    def __init__(self, message: str, *, definite: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.definite = definite
        self.code = code


class AnalysisFailed(SwitchboardError):
    """A post-call analysis gave nothing usable: the model's error event, a failed
    response, an answer that is not JSON (``app.analysis``; stored as failed, never
    raised past the analysis job)."""
