"""Twilio's requests to the server, written once: the parameters of the voice webhook and
of every callback (call status, ``<Stream statusCallback>``, async AMD), and how each is
signed and delivered.

Source: docs/protocols.md §2 "Voice webhook and TwiML", "Request validation" and
"Outbound calls and live control"; Twilio "TwiML Voice: Twilio's request to your
application" (the parameters of every voice request), "Call resource: StatusCallback"
(``CallbackSource``, ``SequenceNumber``, ``Timestamp``, ``CallDuration``), "Media Streams:
statusCallback" and "Answering Machine Detection: AsyncAmdStatusCallback".

Every request is signed (``X-Twilio-Signature``, HMAC-SHA1 by the ``twilio`` package's
``RequestValidator``) over the URL the server believes Twilio uses (``public_base_url``)
and delivered to where the server is really reached (``base_url``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
from twilio.request_validator import RequestValidator

from switchboard_sim.calls import LiveCall

#: The REST API version in webhook parameters and REST paths.
API_VERSION = "2010-04-01"
#: Webhook / callback HTTP timeout (s); Twilio's default webhook timeout is 15 s.
HTTP_TIMEOUT_S = 15.0
#: The ``User-Agent`` Twilio's webhooks carry.
USER_AGENT = "TwilioProxy/1.1"
#: ``SipResponseCode`` of a final status callback, by ``CallStatus``.
SIP_RESPONSE_CODES = {"busy": "486", "no-answer": "487", "failed": "503"}


def country(number: str) -> str:
    """The ISO country of an E.164 number as Twilio reports it (the simulator knows +1 only)."""
    return "US" if number.startswith("+1") else ""


def call_params(call: LiveCall, status: str) -> dict[str, str]:
    """The parameters of every voice request about ``call`` with ``CallStatus`` = ``status``
    (the voice webhook, a redirect's TwiML fetch, the start of every status callback)."""
    return {
        "AccountSid": call.account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call.sid,
        "CallStatus": status,
        "Called": call.to_number,
        "CalledCountry": country(call.to_number),
        "Caller": call.from_number,
        "CallerCountry": country(call.from_number),
        "Direction": call.direction,
        "From": call.from_number,
        "FromCountry": country(call.from_number),
        "To": call.to_number,
        "ToCountry": country(call.to_number),
    }


def status_params(call: LiveCall, status: str, sequence: int) -> dict[str, str]:
    """A call-progress status callback (``initiated``, ``ringing``, ``in-progress``);
    ``sequence``: its ``SequenceNumber``, from 0 per call."""
    params = call_params(call, status)
    params.update(
        {
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(datetime.now(UTC)),
        }
    )
    return params


def final_status_params(
    call: LiveCall, status: str, sequence: int, *, answered_by: str | None = None
) -> dict[str, str]:
    """The final status callback (``completed``, ``busy``, ``no-answer``, ``failed``,
    ``canceled``): ``CallDuration`` in whole seconds, ``Duration`` in billed minutes,
    ``SipResponseCode`` of a call that did not connect, ``AnsweredBy`` when given (the
    call asked for AMD)."""
    duration_s = call.duration_s or 0
    params = status_params(call, status, sequence)
    params.update(
        {
            "Timestamp": format_datetime(call.end_time or datetime.now(UTC)),
            "CallDuration": str(duration_s),
            "Duration": str(max(1, math.ceil(duration_s / 60))) if duration_s else "0",
        }
    )
    if status in SIP_RESPONSE_CODES:
        params["SipResponseCode"] = SIP_RESPONSE_CODES[status]
    if answered_by:
        params["AnsweredBy"] = answered_by
    return params


def stream_status_params(call: LiveCall, stream_sid: str, event: str) -> dict[str, str]:
    """A ``<Stream statusCallback>`` request: ``event`` is ``stream-started`` or
    ``stream-stopped``."""
    return {
        "AccountSid": call.account_sid,
        "CallSid": call.sid,
        "StreamSid": stream_sid,
        "StreamEvent": event,
        "Timestamp": datetime.now(UTC).isoformat(),
    }


def amd_params(call: LiveCall, verdict: str, detection_ms: int) -> dict[str, str]:
    """An ``AsyncAmdStatusCallback`` request: ``AnsweredBy`` = ``verdict`` (``human``,
    ``machine_end_beep``, …) after ``detection_ms`` ms."""
    return {
        "AccountSid": call.account_sid,
        "CallSid": call.sid,
        "AnsweredBy": verdict,
        "MachineDetectionDuration": str(int(detection_ms)),
    }


class Webhooks:
    """Where and how the simulator sends Twilio's requests to the server.

    ``base_url``: where the server is really reached (``http://127.0.0.1:8000``);
    ``public_base_url``: the URL the server believes Twilio uses, which signatures are
    computed over; ``auth_token``: the Twilio account's token (the signing key).
    """

    def __init__(self, base_url: str, public_base_url: str, auth_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.public_base_url = public_base_url.rstrip("/")
        self._validator = RequestValidator(auth_token)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """``X-Twilio-Signature`` for ``url`` and form ``params`` (HMAC-SHA1, base64)."""
        return str(self._validator.compute_signature(url, params))

    def addresses(self, path_or_url: str) -> tuple[str, str]:
        """``(deliver to, signed over)`` for a path on the server (``/twilio/status``) or
        a URL: a public URL goes to the server's real address, signed as it is; any
        other URL is used as it is."""
        public = self.public_base_url
        if path_or_url.startswith(public):
            return self.base_url + path_or_url[len(public) :], path_or_url
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url, path_or_url
        path = "/" + path_or_url.lstrip("/")
        return self.base_url + path, public + path

    async def post(
        self, http: httpx.AsyncClient, path_or_url: str, params: dict[str, str]
    ) -> httpx.Response:
        """POST form ``params`` signed as Twilio does (see :meth:`addresses`).

        Raises ``httpx.HTTPError`` when the request fails (no answer is not an answer).
        """
        target, signed = self.addresses(path_or_url)
        headers = {"X-Twilio-Signature": self.sign(signed, params), "User-Agent": USER_AGENT}
        return await http.post(target, data=params, headers=headers)
