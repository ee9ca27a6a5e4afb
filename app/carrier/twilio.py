"""Pure codec for Twilio Media Streams messages (docs/protocols.md §2 "Media Streams messages").

``decode(text)`` turns one WebSocket text message from Twilio into a typed event whose
class is named after its wire ``event`` (``Connected``, ``Start``, ``Media``, ``Mark``,
``Dtmf``, ``Stop``) through one table, ``DECODERS``. The ``encode_*`` functions build
the messages Switchboard sends back (``media``, ``mark``, ``clear``).

No sockets, HTTP or Redis here. On the hot path (``media``) the base64 payload is
checked for shape but not decoded: it is handed to the Realtime leg as is.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.errors import CarrierCodecError

#: Twilio SIDs are two letters and 32 hex digits; be lenient but never allow JSON metacharacters.
_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Connected:
    """``connected {event, protocol:"Call", version}`` — first message of a stream."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    """``start`` — stream metadata. ``custom_parameters`` are the TwiML ``<Parameter>``s."""

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str]
    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class Media:
    """``media`` — one inbound chunk. ``payload`` is base64 μ-law (undecoded).

    ``timestamp_ms`` is ms since the stream started; ``size`` is the decoded length in
    bytes (160 for a usual 20 ms frame at 8 kHz).
    """

    payload: str
    timestamp_ms: int
    size: int
    track: str = "inbound"


@dataclass(frozen=True, slots=True)
class Mark:
    """``mark`` — echo of a mark we sent, once the audio queued before it has played."""

    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    """``dtmf`` — a keypad digit (``0-9``, ``*``, ``#``)."""

    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    """``stop`` — the stream ended (call hung up or left ``<Connect>``)."""

    call_sid: str
    account_sid: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed message with an ``event`` this codec does not know (counted, ignored)."""

    event: str
    raw: dict[str, Any] = field(repr=False)


CarrierEvent = Connected | Start | Media | Mark | Dtmf | Stop | Unknown


def _obj(msg: dict[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise CarrierCodecError(f"{msg.get('event')}: missing object {key!r}")
    return value


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise CarrierCodecError(f"{where}: missing string {key!r}")
    return value


def _connected(msg: dict[str, Any]) -> Connected:
    return Connected(protocol=str(msg.get("protocol", "")), version=str(msg.get("version", "")))


def _start(msg: dict[str, Any]) -> Start:
    start = _obj(msg, "start")
    fmt = start.get("mediaFormat") or {}
    params = start.get("customParameters") or {}
    if not isinstance(params, dict) or not isinstance(fmt, dict):
        raise CarrierCodecError("start: customParameters/mediaFormat must be objects")
    tracks = start.get("tracks") or ["inbound"]
    stream_sid = _str(start, "streamSid", "start")
    call_sid = _str(start, "callSid", "start")
    if not _SID.match(stream_sid) or not _SID.match(call_sid):
        raise CarrierCodecError("start: streamSid/callSid have an invalid shape")
    return Start(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=str(start.get("accountSid", "")),
        tracks=tuple(str(t) for t in tracks),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        encoding=str(fmt.get("encoding", "audio/x-mulaw")),
        sample_rate=int(fmt.get("sampleRate", 8000)),
        channels=int(fmt.get("channels", 1)),
    )


def _media(msg: dict[str, Any]) -> Media:
    media = _obj(msg, "media")
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise CarrierCodecError("media: missing string 'payload'")
    try:
        # Shape check without keeping the bytes: strict base64 (RFC 4648 §4).
        size = len(binascii.a2b_base64(payload, strict_mode=True))
    except (binascii.Error, ValueError) as exc:
        raise CarrierCodecError(f"media: payload is not valid base64: {exc}") from None
    ts = media.get("timestamp", 0)
    try:
        timestamp_ms = int(ts)
    except (TypeError, ValueError):
        raise CarrierCodecError(f"media: timestamp {ts!r} is not an integer") from None
    return Media(
        payload=payload,
        timestamp_ms=timestamp_ms,
        size=size,
        track=str(media.get("track", "inbound")),
    )


def _mark(msg: dict[str, Any]) -> Mark:
    return Mark(name=_str(_obj(msg, "mark"), "name", "mark"))


def _dtmf(msg: dict[str, Any]) -> Dtmf:
    digit = _str(_obj(msg, "dtmf"), "digit", "dtmf")
    if len(digit) != 1 or digit not in "0123456789*#ABCD":
        raise CarrierCodecError(f"dtmf: invalid digit {digit!r}")
    return Dtmf(digit=digit)


def _stop(msg: dict[str, Any]) -> Stop:
    stop = msg.get("stop") or {}
    if not isinstance(stop, dict):
        raise CarrierCodecError("stop: 'stop' must be an object")
    return Stop(call_sid=str(stop.get("callSid", "")), account_sid=str(stop.get("accountSid", "")))


#: The one decode table: wire ``event`` → decoder.
DECODERS: dict[str, Callable[[dict[str, Any]], CarrierEvent]] = {
    "connected": _connected,
    "start": _start,
    "media": _media,
    "mark": _mark,
    "dtmf": _dtmf,
    "stop": _stop,
}


def decode(message: str | bytes) -> CarrierEvent:
    """Decode one Twilio Media Streams message.

    Returns a typed event; a well-formed message with an unknown ``event`` gives
    ``Unknown``. Raises ``CarrierCodecError`` for invalid JSON, a non-object, a missing
    ``event`` or a malformed body (including bad base64 in ``media.payload``).
    """
    try:
        msg = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise CarrierCodecError(f"invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise CarrierCodecError("message is not a JSON object")
    event = msg.get("event")
    if not isinstance(event, str):
        raise CarrierCodecError("message has no string 'event'")
    decoder = DECODERS.get(event)
    if decoder is None:
        return Unknown(event=event, raw=msg)
    try:
        return decoder(msg)
    except CarrierCodecError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise CarrierCodecError(f"{event}: malformed message: {exc}") from None


# --- outbound (Switchboard → Twilio) ------------------------------------------------------


def encode_media(stream_sid: str, payload_b64: str) -> str:
    """``media {event, streamSid, media{payload}}``; ``payload_b64`` is base64 μ-law, any size."""
    # Built by hand: the payload is already base64 (no escaping needed) and this runs per chunk.
    return (
        '{"event":"media","streamSid":"'
        + stream_sid
        + '","media":{"payload":"'
        + payload_b64
        + '"}}'
    )


def encode_mark(stream_sid: str, name: str) -> str:
    """``mark {event, streamSid, mark{name}}`` — echoed back once prior audio has played."""
    return orjson.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}).decode()


def encode_clear(stream_sid: str) -> str:
    """``clear {event, streamSid}`` — drop queued outbound audio (barge-in)."""
    return orjson.dumps({"event": "clear", "streamSid": stream_sid}).decode()
