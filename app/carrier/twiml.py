"""TwiML answers and Twilio request signatures, built on the ``twilio`` package.

Sources: docs/protocols.md §2 "Voice webhook and TwiML" and "Request validation";
Twilio docs "TwiML Voice: <Stream>" and "Webhooks security".
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

#: Twilio limits each ``<Parameter>`` name+value to under 500 characters.
MAX_PARAMETER_CHARS = 500


def connect_stream(
    stream_url: str,
    parameters: Mapping[str, str],
    status_callback: str | None = None,
) -> str:
    """TwiML ``<Response><Connect><Stream url=…><Parameter …/></Stream></Connect></Response>``.

    ``stream_url`` must be a ``wss://`` (or ``ws://`` offline) URL without a query string;
    per-call data goes in ``parameters``. Raises ``ValueError`` when a parameter is too long
    or the URL carries a query.
    """
    if "?" in stream_url:
        raise ValueError("the <Stream> url must not carry a query string")
    response = VoiceResponse()
    connect = Connect()
    kwargs: dict[str, str] = {}
    if status_callback:
        kwargs = {"status_callback": status_callback, "status_callback_method": "POST"}
    stream = connect.stream(url=stream_url, **kwargs)
    for name, value in parameters.items():
        if len(name) + len(value) >= MAX_PARAMETER_CHARS:
            raise ValueError(f"<Parameter> {name!r} is too long")
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def dial(number: str) -> str:
    """TwiML ``<Response><Dial>NUMBER</Dial></Response>`` used to transfer a call."""
    response = VoiceResponse()
    d = Dial()
    d.number(number)
    response.append(d)
    return str(response)


def say_then(line: str, to_number: str | None = None) -> str:
    """TwiML that speaks ``line`` (``<Say>``), then dials ``to_number`` or hangs up:
    the fallback when no Realtime session can be had (Twilio TwiML ``<Say>``, ``<Dial>``,
    ``<Hangup>``)."""
    response = VoiceResponse()
    response.say(line)
    if to_number:
        d = Dial()
        d.number(to_number)
        response.append(d)
    else:
        response.hangup()
    return str(response)


def hangup_twiml() -> str:
    """TwiML that ends the call (``<Response><Hangup/></Response>``)."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


class SignatureChecker:
    """Checks ``X-Twilio-Signature`` (HMAC-SHA1 over URL + sorted form fields, base64)."""

    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token)

    def valid(self, url: str, params: Mapping[str, str], signature: str | None) -> bool:
        """True when ``signature`` matches ``url`` (rebuilt from the public base URL) and
        ``params`` (the POSTed form fields; empty for the WebSocket handshake)."""
        if not signature:
            return False
        return bool(self._validator.validate(url, dict(params), signature))

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The signature Twilio would send (used by the carrier simulator and tests)."""
        return str(self._validator.compute_signature(url, dict(params)))


def valid_stream_upgrade(checker: SignatureChecker, stream_url: str, signature: str | None) -> bool:
    """Whether a media WebSocket upgrade's ``X-Twilio-Signature`` is Twilio's.

    Twilio signs the handshake over the full ``wss://`` URL of the ``<Stream>`` exactly as
    the TwiML gave it, with no POST parameters (Twilio docs "Media Streams: WebSocket
    security"). ``stream_url`` is that URL rebuilt from the public base URL
    (``Settings.media_stream_url``), never from the request's Host header. Pure: call it
    before the upgrade is accepted, from whichever WebSocket path serves the route.
    """
    return checker.valid(stream_url, {}, signature)
