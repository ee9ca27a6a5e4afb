"""The one exception tree of Switchboard.

``SwitchboardError`` is the root. A call's end is signalled by ``CallEnded``: its
subclass ``CallCompleted`` is a clean end (the carrier said ``stop``, a tool hung up,
the call was transferred), ``CallAborted`` an abnormal one (a leg dropped, a deadline
passed). The bridge tells them apart to set the stored end reason and metrics.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Root of every error Switchboard raises on purpose."""


class ConfigError(SwitchboardError):
    """Settings or a flow file are invalid."""


# --- wire codecs ------------------------------------------------------------------------


class CodecError(SwitchboardError):
    """A wire message could not be decoded (malformed JSON, missing field, bad base64).

    Raised by the pure codecs; the bridge logs and counts it and the call goes on.
    """


class CarrierCodecError(CodecError):
    """A carrier (Twilio Media Streams) message was malformed."""


class RealtimeCodecError(CodecError):
    """A Realtime server event was malformed."""


# --- security ---------------------------------------------------------------------------


class AuthError(SwitchboardError):
    """A request failed authentication."""


class InvalidSignature(AuthError):
    """``X-Twilio-Signature`` missing or wrong (answered 403)."""


class InvalidStreamToken(AuthError):
    """The per-call stream token is missing, unknown, expired or already used."""


# --- call lifecycle ---------------------------------------------------------------------


class StreamRejected(AuthError):
    """The media stream failed its checks before any audio was bridged (no ``start`` in
    time, a bad or replayed token): closed with 1008, nothing bridged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
