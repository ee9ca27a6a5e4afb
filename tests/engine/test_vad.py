"""Server VAD timing on real synthesized speech (audio timeline, no wall-clock)."""

from __future__ import annotations

import pytest

from switchboard_engine import EngineServer
from switchboard_engine.vad import (
    PAUSE_MS,
    SpeechEnd,
    SpeechPause,
    SpeechStart,
    VadSegmenter,
    WebRtcScorer,
    make_scorer,
)

from .conftest import caller_speech, ga_session, open_client, silence, speech_extent_ms

TOLERANCE_MS = 150


@pytest.mark.parametrize("scorer_factory", [make_scorer, WebRtcScorer], ids=["silero", "webrtc"])
async def test_segmenter_finds_speech(scorer_factory: type) -> None:
    speech = await caller_speech("What's the status of order 1042?")
    first, last = speech_extent_ms(speech)
    audio = silence(1200) + speech + silence(1500)
    seg = VadSegmenter(scorer_factory(), threshold=0.5, silence_duration_ms=500)
    events = []
    for i in range(0, len(audio), 160):  # 20 ms frames, as Twilio sends them
        events += seg.feed(audio[i : i + 160])
    assert [type(e) for e in events] == [SpeechStart, SpeechPause, SpeechEnd]
    start, pause, end = events
    assert isinstance(start, SpeechStart) and isinstance(end, SpeechEnd)
    # The pause (speculative transcription starts there) is the same silence as the end.
    assert isinstance(pause, SpeechPause) and pause.end_ms == end.end_ms
    assert pause.at_ms - pause.end_ms >= PAUSE_MS and pause.at_ms < end.commit_ms
    assert abs(start.onset_ms - (1200 + first)) <= TOLERANCE_MS
    assert abs(end.end_ms - (1200 + last)) <= TOLERANCE_MS
    assert end.commit_ms - end.end_ms >= 500


@pytest.mark.parametrize("prefix_ms", [0, 300])
async def test_speech_events_on_the_wire(engine: EngineServer, prefix_ms: int) -> None:
    client = await open_client(engine)
    session = ga_session()
    td = session["audio"]["input"]["turn_detection"]
    td.update(prefix_padding_ms=prefix_ms, create_response=False)
    await client.send({"type": "session.update", "session": session})
    await client.recv_until("session.updated")
    speech = await caller_speech("What's the status of order 1042?")
    first, last = speech_extent_ms(speech)
    lead = 2000
    await client.append(silence(lead) + speech + silence(1000), chunk=160)
    events = await client.recv_until("conversation.item.input_audio_transcription.completed")
    by_type = {e["type"]: e for e in events}
    started = by_type["input_audio_buffer.speech_started"]
    stopped = by_type["input_audio_buffer.speech_stopped"]
    committed = by_type["input_audio_buffer.committed"]
    assert abs(started["audio_start_ms"] - (lead + first - prefix_ms)) <= TOLERANCE_MS
    assert abs(stopped["audio_end_ms"] - (lead + last)) <= TOLERANCE_MS
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    completed = by_type["conversation.item.input_audio_transcription.completed"]
    assert completed["transcript"] == "What's the status of order 1042?"  # SCRIPTED
    assert "response.created" not in by_type  # create_response=False
    await client.ws.close()


async def test_prefix_padding_is_clamped_at_zero(engine: EngineServer) -> None:
    client = await open_client(engine)
    session = ga_session()
    session["audio"]["input"]["turn_detection"].update(
        prefix_padding_ms=1000, create_response=False
    )
    await client.send({"type": "session.update", "session": session})
    await client.recv_until("session.updated")
    speech = await caller_speech("Hello there")
    await client.append(silence(200) + speech + silence(800))
    events = await client.recv_until("input_audio_buffer.speech_started")
    assert events[-1]["audio_start_ms"] == 0
    await client.ws.close()
