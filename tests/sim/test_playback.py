"""Playback model driven by a fake clock (no sleeps): real-time play, marks, clear."""

from __future__ import annotations

import pytest

from app.sim.playback import ClearRecord, Playback, PlaybackOverflow


def test_plays_at_8_bytes_per_ms_and_echoes_marks_after_their_audio() -> None:
    pb = Playback()
    pb.push_media(b"\x01" * 800, now_ms=0)  # 100 ms
    pb.push_mark("a", now_ms=0)
    pb.push_media(b"\x02" * 400, now_ms=0)  # 50 ms
    pb.push_mark("b", now_ms=0)

    step = pb.advance(40)
    assert step.marks == []
    assert step.audio == b"\x01" * 320
    assert step.audio_start_ms == 0
    assert pb.is_playing

    step = pb.advance(99.9)
    assert step.marks == []  # 1 byte of "a"'s audio still to play
    step = pb.advance(100)
    assert step.marks == ["a"]
    assert pb.played_bytes_total == 800

    step = pb.advance(149)
    assert step.marks == []
    step = pb.advance(500)
    assert step.marks == ["b"]
    assert step.audio == b"\x02" * 8  # only what was left
    assert not pb.is_playing
    assert pb.last_audio_end_ms == 150
    assert pb.played_bytes_total == 1200


def test_audio_arriving_while_idle_starts_playing_on_arrival() -> None:
    pb = Playback()
    assert pb.advance(1000).audio == b""
    pb.push_media(b"\x05" * 160, now_ms=1000)
    step = pb.advance(1010)
    assert step.audio_start_ms == 1000
    assert len(step.audio) == 80
    assert pb.burst_start_ms == 1000
    # a mark with no audio before it is reached immediately
    pb.advance(2000)
    pb.push_mark("now", now_ms=2000)
    assert pb.advance(2000).marks == ["now"]


def test_clear_drops_audio_and_returns_all_pending_marks_in_order() -> None:
    pb = Playback()
    pb.push_media(b"\x01" * 80, now_ms=0)  # 10 ms
    pb.push_mark("m1", now_ms=0)
    pb.push_media(b"\x02" * 800, now_ms=0)  # 100 ms
    pb.push_mark("m2", now_ms=0)
    pb.push_media(b"\x03" * 800, now_ms=0)
    pb.push_mark("m3", now_ms=0)

    marks = pb.clear(now_ms=30)  # m1 played, 20 ms of m2's audio played
    assert marks == ["m1", "m2", "m3"]
    assert pb.pending_marks == []
    assert pb.queued_bytes == 0
    assert pb.played_bytes_total == 240
    assert pb.clears == [ClearRecord(at_ms=30, played_bytes_total=240)]
    assert not pb.is_playing
    assert pb.last_audio_end_ms == 30
    # nothing left to play
    assert pb.advance(1000).audio == b""
    assert pb.played_bytes_total == 240


def test_recording_places_audio_on_the_timeline_with_silence() -> None:
    pb = Playback()
    pb.push_media(b"\x10" * 80, now_ms=5)
    pb.advance(100)
    pb.push_media(b"\x20" * 80, now_ms=200)
    pb.push_media(b"\x30" * 160, now_ms=200)
    pb.advance(215)  # 15 ms = 120 bytes of the second burst
    rec = pb.recording(until_ms=300)
    assert len(rec) == 300 * 8
    assert rec[: 5 * 8] == b"\xff" * 40
    assert rec[40:120] == b"\x10" * 80
    assert rec[120:1600] == b"\xff" * (1600 - 120)
    assert rec[1600:1680] == b"\x20" * 80
    assert rec[1680:1720] == b"\x30" * 40
    assert rec[1720:] == b"\xff" * (2400 - 1720)


def test_no_drift_over_many_small_advances() -> None:
    pb = Playback()
    pb.push_media(b"\x01" * 8000 * 60, now_ms=0)  # 60 s
    t = 0.0
    while t < 30_000:
        t += 20.0 / 3  # awkward step
        pb.advance(t)
    assert pb.played_bytes_total == int(t * 8)


def test_bounds() -> None:
    pb = Playback(max_queued_bytes=1000, max_pending_marks=1)
    pb.push_media(b"\x01" * 1000, now_ms=0)
    with pytest.raises(PlaybackOverflow):
        pb.push_media(b"\x01", now_ms=0)
    pb.push_mark("x", now_ms=0)
    with pytest.raises(PlaybackOverflow):
        pb.push_mark("y", now_ms=0)
    pb.advance(125)
    assert pb.queued_bytes == 0
