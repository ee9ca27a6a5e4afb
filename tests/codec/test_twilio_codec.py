"""Twilio Media Streams codec, from recorded frames (docs/protocols.md §2)."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from app.carrier import twilio as tw
from app.errors import CarrierCodecError

FRAMES = (Path(__file__).parent.parent / "fixtures/twilio/stream.jsonl").read_text().splitlines()


def test_recorded_stream_decodes_to_typed_events() -> None:
    events = [tw.decode(line) for line in FRAMES]
    assert [type(e).__name__ for e in events] == [
        "Connected",
        "Start",
        "Media",
        "Dtmf",
        "Mark",
        "Stop",
    ]
    connected, start, media, dtmf, mark, stop = events
    assert connected == tw.Connected(protocol="Call", version="1.0.0")
    assert isinstance(start, tw.Start)
    assert start.stream_sid == "MZ18ad3ab5a668481ce02b83e7395059f0"
    assert start.call_sid == "CA2d3e36ae1ef45f2b5fd2d3dbd3e7e5a4"
    assert start.custom_parameters == {"token": "q4-Ue8fGk3mN", "flow": "support"}
    assert (start.encoding, start.sample_rate, start.channels) == ("audio/x-mulaw", 8000, 1)
    assert isinstance(media, tw.Media)
    assert media.size == 160 and media.timestamp_ms == 5
    # The payload is passed through untouched (no re-encoding).
    assert media.payload == orjson.loads(FRAMES[2])["media"]["payload"]
    assert dtmf == tw.Dtmf(digit="5")
    assert mark == tw.Mark(name="item_abc:3")
    assert stop == tw.Stop(call_sid=start.call_sid, account_sid=start.account_sid)


def test_unknown_event_is_typed_not_an_error() -> None:
    event = tw.decode('{"event":"sparkle","x":1}')
    assert isinstance(event, tw.Unknown) and event.event == "sparkle"


@pytest.mark.parametrize(
    "raw, why",
    [
        ("not json", "invalid JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"no":"event"}', "no string 'event'"),
        ('{"event":"media","media":{"payload":"%%%notbase64"}}', "not valid base64"),
        ('{"event":"media","media":{"payload":"AAAA","timestamp":"soon"}}', "not an integer"),
        ('{"event":"media"}', "missing object 'media'"),
        ('{"event":"start","start":{"streamSid":"MZ1"}}', "callSid"),
        ('{"event":"start","start":{"streamSid":"MZ\\"x","callSid":"CA1"}}', "invalid shape"),
        ('{"event":"dtmf","dtmf":{"digit":"55"}}', "invalid digit"),
        ('{"event":"mark","mark":{}}', "name"),
    ],
)
def test_malformed_frames_raise_codec_error(raw: str, why: str) -> None:
    with pytest.raises(CarrierCodecError, match=why):
        tw.decode(raw)


def test_outbound_messages_are_twilio_shaped() -> None:
    sid = "MZ18ad3ab5a668481ce02b83e7395059f0"
    payload = base64.b64encode(b"\x7f" * 800).decode()
    assert orjson.loads(tw.encode_media(sid, payload)) == {
        "event": "media",
        "streamSid": sid,
        "media": {"payload": payload},
    }
    assert orjson.loads(tw.encode_mark(sid, 'a"b')) == {
        "event": "mark",
        "streamSid": sid,
        "mark": {"name": 'a"b'},
    }
    assert orjson.loads(tw.encode_clear(sid)) == {"event": "clear", "streamSid": sid}
