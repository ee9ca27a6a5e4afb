"""The carrier simulator against a Twilio-facing test peer over real loopback sockets.

Calls run 4x faster than real time (``frame_interval_ms=5``): each 160-byte frame
still carries 20 ms of audio and every script time / playback time scales alike.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from typing import Any

from app.audio import FRAME_BYTES
from app.settings import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN
from switchboard_sim.calls import CallScript, SimulatedCallResult
from switchboard_sim.carrier import CarrierSimulator
from tests.sim.peer import PeerCall, TwilioPeer

SID = DEV_TWILIO_ACCOUNT_SID
TOKEN = DEV_TWILIO_AUTH_TOKEN
FRAME_INTERVAL_MS = 5
SPEED = 20 / FRAME_INTERVAL_MS


def call_s(ms: float) -> float:
    """Wall seconds for ``ms`` of call time."""
    return ms / 1000 / SPEED


def sim_for(peer: TwilioPeer, token: str = TOKEN) -> CarrierSimulator:
    return CarrierSimulator(peer.base_url, peer.base_url, SID, token)


def assert_twilio_framing(call: PeerCall, result: SimulatedCallResult) -> None:
    """sequenceNumber +1 per message, chunks +1, timestamps non-decreasing, 160-byte frames."""
    assert call.start is not None
    assert call.start["sequenceNumber"] == "1"
    assert call.start["start"]["callSid"] == result.call_sid
    assert call.start["start"]["accountSid"] == SID
    assert call.start["start"]["tracks"] == ["inbound"]
    assert call.start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    msgs = [r.msg for r in call.received if r.msg.get("event") != "<raw>"]
    seqs = [int(m["sequenceNumber"]) for m in msgs]
    assert seqs == list(range(2, 2 + len(seqs)))
    media = call.events("media")
    assert media, "no media frames"
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, len(media) + 1))
    stamps = [int(m["media"]["timestamp"]) for m in media]
    assert stamps == sorted(stamps)
    for m in msgs:
        assert m["streamSid"] == result.stream_sid
    for m in media:
        assert m["media"]["track"] == "inbound"
        assert len(base64.b64decode(m["media"]["payload"])) == FRAME_BYTES
    # A frame in flight when the peer closes is never read by it: one, or the frames of a
    # catch-up when the sender ran late on a busy machine (it then sends them back to back,
    # one per frame interval it was behind).
    in_flight = result.frames_sent - len(media)
    burst = 1 + math.ceil(result.max_send_lag_ms / FRAME_INTERVAL_MS)
    assert in_flight == 0 or (call.closed_by_peer and 1 <= in_flight <= burst), (
        in_flight,
        result.max_send_lag_ms,
    )


def assert_signed_and_completed(peer: TwilioPeer, result: SimulatedCallResult) -> None:
    (params, ok) = peer.webhooks[0]
    assert ok, "webhook signature did not validate"
    assert params["CallSid"] == result.call_sid and params["CallStatus"] == "ringing"
    assert params["Direction"] == "inbound" and params["ApiVersion"] == "2010-04-01"
    assert peer.calls[0].ws_signature_ok, "WebSocket handshake signature did not validate"
    assert peer.status_callbacks, "no status callback"
    cb, cb_ok = peer.status_callbacks[-1]
    assert cb_ok and cb["CallStatus"] == "completed" and cb["CallSid"] == result.call_sid
    assert int(cb["CallDuration"]) >= 0
    assert result.status_callback_http_status == 204


async def test_marks_echo_after_playback_and_clear_echoes_pending() -> None:
    t_first: list[float] = []

    async def behaviour(call: PeerCall) -> None:
        # 5 x 200 ms of distinct audio, a mark after each, all sent at once.
        t_first.append(time.monotonic())
        for i in range(5):
            await call.send_media(bytes([0x10 + i]) * 1600)
            await call.send_mark(f"g{i}")
        await call.wait_until(lambda: call.mark_echo_time("g4") is not None)
        # 4 x 500 ms, cleared 700 ms (call time) after queueing.
        for i in range(4):
            await call.send_media(bytes([0x40 + i]) * 4000)
            await call.send_mark(f"b{i}")
        await asyncio.sleep(call_s(700))
        await call.send_clear()
        await call.wait_until(lambda: call.mark_echo_time("b3") is not None)
        await asyncio.sleep(call_s(100))
        await call.close(1000)

    async with TwilioPeer(SID, TOKEN, behaviour) as peer:
        result = await sim_for(peer).place_inbound_call(
            CallScript(frame_interval_ms=FRAME_INTERVAL_MS, max_duration_s=30)
        )
    assert not peer.behaviour_errors
    call = peer.calls[0]
    assert call.token_ok and result.token is not None
    assert call.start is not None
    assert call.start["start"]["customParameters"]["token"] == result.token
    assert call.start["start"]["customParameters"]["call_sid"] == result.call_sid
    assert_signed_and_completed(peer, result)
    assert_twilio_framing(call, result)
    assert result.ended_by == "server_closed" and result.ws_close_code == 1000
    assert not call.events("stop")  # the server closed: nothing to stop
    assert result.errors == []

    # Marks come back in order, each only once its audio has played in real time.
    assert result.marks_sent_back == ["g0", "g1", "g2", "g3", "g4", "b0", "b1", "b2", "b3"]
    for i in range(5):
        echoed = call.mark_echo_time(f"g{i}")
        assert echoed is not None
        assert echoed - t_first[0] >= call_s(200 * (i + 1)), f"g{i} echoed early"
        assert echoed - t_first[0] < call_s(200 * (i + 1)) + 0.15, f"g{i} echoed late"
    echoes = {e.name: e for e in result.mark_echoes}
    for i in range(5):
        assert echoes[f"g{i}"].played_bytes_total >= 1600 * (i + 1)
        assert not echoes[f"g{i}"].on_clear
    assert not echoes["b0"].on_clear and echoes["b0"].played_bytes_total >= 8000 + 4000

    # The clear came while b1 played: b1..b3 echoed at once, on the clear.
    assert len(result.clears) == 1
    cleared_at = result.clears[0].played_bytes_total
    assert 8000 + 4000 < cleared_at < 8000 + 8000
    for name in ("b1", "b2", "b3"):
        assert echoes[name].on_clear and echoes[name].played_bytes_total == cleared_at
    assert result.played_bytes_total == cleared_at
    assert result.agent_audio_bytes_received == 5 * 1600 + 4 * 4000

    # The recording holds exactly what was played, in order, on the call timeline.
    audio = result.agent_audio
    assert len(audio) == int(result.duration_ms * 8)
    for i in range(5):
        assert audio.count(bytes([0x10 + i])) == 1600
    assert audio.count(b"\x40") == 4000
    assert audio.count(b"\x41") == cleared_at - 12000
    assert audio.count(b"\x42") == 0 and audio.count(b"\x43") == 0
    assert audio.index(b"\x11") > audio.rindex(b"\x10")
    assert len(audio) - audio.count(b"\xff") == result.played_bytes_total


async def test_turn_taking_caller_and_latency() -> None:
    u1, u2 = b"\x2a" * 2400, b"\x3b" * 1600  # 300 ms, 200 ms

    async def echo(call: PeerCall) -> None:
        """Echo each speech frame back as agent audio with a mark; close after the second."""
        seen = 0
        speech = 0
        while speech < (len(u1) + len(u2)) // FRAME_BYTES:
            await call.wait_until(lambda n=seen: len(call.events("media")) > n)
            media = call.events("media")
            for m in media[seen:]:
                frame = base64.b64decode(m["media"]["payload"])
                if frame != b"\xff" * FRAME_BYTES:
                    speech += 1
                    await call.send_media(frame)
                    await call.send_mark(f"e{m['media']['chunk']}")
            seen = len(media)
        await call.wait_until(lambda: len(call.events("mark")) == speech)
        await call.close(1000)

    async with TwilioPeer(SID, TOKEN, echo) as peer:
        result = await sim_for(peer).place_inbound_call(
            CallScript(
                caller_audio=[u1, u2],
                gap_ms=300,
                first_wait_ms=200,
                frame_interval_ms=FRAME_INTERVAL_MS,
                max_duration_s=30,
            )
        )
    assert not peer.behaviour_errors
    call = peer.calls[0]
    assert_signed_and_completed(peer, result)
    assert_twilio_framing(call, result)
    assert result.ended_by == "server_closed"
    assert result.errors == []

    frames = call.inbound_frames()
    speech = b"".join(f for f in frames if f != b"\xff" * FRAME_BYTES)
    assert speech == u1 + u2
    # Leading silence for first_wait_ms, then u1; silence between the utterances.
    first_speech = next(i for i, f in enumerate(frames) if f != b"\xff" * FRAME_BYTES)
    assert 200 // 20 <= first_speech <= 200 // 20 + 2

    a, b = result.utterances
    assert a.frames == 15 and b.frames == 10
    assert a.end_ms is not None and b.end_ms is not None
    assert 200 <= a.start_ms < 200 + 60
    # u2 waits until the echoed agent audio finished plus gap_ms of silence
    agent_end_ms = result.agent_audio.rindex(b"\x2a") / 8
    assert b.start_ms >= agent_end_ms + 300
    assert b.start_ms < agent_end_ms + 300 + 80
    assert len(result.turn_latencies_ms) == 2
    lat = result.turn_latencies_ms[0]
    assert lat is not None and 0 <= lat < 100

    # Every echoed frame was played and its mark echoed after it.
    assert result.marks_sent_back == [
        f"e{int(m['media']['chunk'])}"
        for m in call.events("media")
        if base64.b64decode(m["media"]["payload"]) != b"\xff" * 160
    ]
    assert not any(e.on_clear for e in result.mark_echoes)
    assert result.agent_audio.count(b"\x2a") == len(u1)
    assert result.agent_audio.count(b"\x3b") == len(u2)


async def test_barge_in_starts_speaking_over_the_agent() -> None:
    async def greet_then_clear(call: PeerCall) -> None:
        await call.send_media(b"\x55" * 24000)  # 3 s greeting
        await call.send_mark("greeting")
        await call.wait_until(
            lambda: any(f != b"\xff" * FRAME_BYTES for f in call.inbound_frames())
        )
        await call.send_clear()
        await call.wait_until(lambda: call.mark_echo_time("greeting") is not None)
        await call.wait_until(lambda: len(call.events("media")) > 40)
        await call.close(1000)

    async with TwilioPeer(SID, TOKEN, greet_then_clear) as peer:
        result = await sim_for(peer).place_inbound_call(
            CallScript(
                caller_audio=[b"\x2a" * 1600],
                barge_in_after_ms=500,
                first_wait_ms=2000,
                frame_interval_ms=FRAME_INTERVAL_MS,
                max_duration_s=30,
            )
        )
    assert not peer.behaviour_errors
    (utt,) = result.utterances
    assert 500 <= utt.start_ms < 500 + 80  # greeting starts playing at ~0 ms
    (clear,) = result.clears
    assert 500 * 8 <= clear.played_bytes_total < 24000
    (echo,) = result.mark_echoes
    assert echo.name == "greeting" and echo.on_clear
    assert result.agent_audio.count(b"\x55") == clear.played_bytes_total


async def test_bad_or_replayed_token_is_refused_by_the_server() -> None:
    async with TwilioPeer(SID, TOKEN) as peer:
        sim = sim_for(peer)
        bad = await sim.place_inbound_call(
            CallScript(override_token="forged", frame_interval_ms=FRAME_INTERVAL_MS)
        )
        first = await sim.place_inbound_call(
            CallScript(frame_interval_ms=FRAME_INTERVAL_MS, max_duration_s=0.3)
        )
        replay = await sim.place_inbound_call(
            CallScript(reuse_token_of=first, frame_interval_ms=FRAME_INTERVAL_MS)
        )
    assert bad.ended_by == "server_closed" and bad.ws_close_code == 1008
    assert bad.token == "forged"
    assert first.ended_by == "timeout" and peer.calls[1].token_ok
    assert replay.token == first.token
    assert replay.ended_by == "server_closed" and replay.ws_close_code == 1008
    assert [c.token_ok for c in peer.calls] == [False, True, False]
    assert len(peer.status_callbacks) == 3


async def test_wrong_auth_token_is_rejected_at_the_webhook() -> None:
    async with TwilioPeer(SID, TOKEN) as peer:
        result = await sim_for(peer, token="not-the-token").place_inbound_call(
            CallScript(frame_interval_ms=FRAME_INTERVAL_MS)
        )
    assert result.ended_by == "rejected"
    assert result.http_status == 403
    assert result.errors and "403" in result.errors[0]
    assert peer.calls == [] and peer.status_callbacks == []


async def test_dtmf_raw_messages_and_caller_hangup_send_stop() -> None:
    async with TwilioPeer(SID, TOKEN) as peer:
        result = await sim_for(peer).place_inbound_call(
            CallScript(
                dtmf=[(100, "5"), (120, "#")],
                extra_raw_messages=[(150, "not json"), (160, b"\x00\x01")],
                first_wait_ms=300,
                hangup_after_ms=200,
                frame_interval_ms=FRAME_INTERVAL_MS,
            )
        )
    call = peer.calls[0]
    assert result.ended_by == "caller_hangup"
    assert 300 <= result.duration_ms < 300 + 60
    dtmf: list[dict[str, Any]] = call.events("dtmf")
    assert [d["dtmf"] for d in dtmf] == [
        {"track": "inbound_track", "digit": "5"},
        {"track": "inbound_track", "digit": "#"},
    ]
    raws = [r.msg["raw"] for r in call.received if r.msg.get("event") == "<raw>"]
    assert raws == ["not json", b"\x00\x01"]
    (stop,) = call.events("stop")
    assert stop["stop"] == {"accountSid": SID, "callSid": result.call_sid}
    assert call.received[-1].msg["event"] == "stop"
    assert result.ws_close_code == 1000
    assert_signed_and_completed(peer, result)
    assert_twilio_framing(call, result)


async def test_max_duration_times_out_with_stop() -> None:
    async with TwilioPeer(SID, TOKEN) as peer:
        result = await sim_for(peer).place_inbound_call(
            CallScript(max_duration_s=0.5, frame_interval_ms=FRAME_INTERVAL_MS)
        )
    assert result.ended_by == "timeout"
    assert result.duration_ms == 500
    assert len(result.agent_audio) == 4000
    call = peer.calls[0]
    assert len(call.events("stop")) == 1
    assert 24 <= len(call.events("media")) <= 26
    assert_twilio_framing(call, result)


async def test_unpaced_mode_sends_each_utterance_in_one_burst() -> None:
    async with TwilioPeer(SID, TOKEN) as peer:
        result = await sim_for(peer).place_inbound_call(
            CallScript(
                caller_audio=[b"\x2a" * 800, b"\x3b" * 330],
                first_wait_ms=100,
                realtime_pace=False,
                hangup_after_ms=100,
                frame_interval_ms=FRAME_INTERVAL_MS,
            )
        )
    call = peer.calls[0]
    frames = call.inbound_frames()
    assert frames[:5] == [b"\x2a" * 160] * 5
    assert frames[5:] == [b"\x3b" * 160, b"\x3b" * 160, b"\x3b" * 10 + b"\xff" * 150]
    assert result.ended_by == "caller_hangup"
