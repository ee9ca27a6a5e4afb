"""Playback model driven by a fake clock (no sleeps): real-time play, marks, clear."""

from __future__ import annotations

import pytest

from switchboard_sim.playback import (
    ClearRecord,
    Playback,
    PlaybackOverflow,
    PlayedSpan,
    mark_item,
    played_ms,
)


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
    assert pb.clears == [
        ClearRecord(at_ms=30, played_bytes_total=240, played_ms_by_item={"m1": 10, "m2": 20})
    ]
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


def test_each_item_heard_is_recorded_exactly_at_the_clear_and_on_the_timeline() -> None:
    pb = Playback()
    pb.push_media(b"\x01" * 800, now_ms=1000)  # item A: 100 ms, marked
    pb.push_mark("A:1", now_ms=1000)
    pb.push_media(b"\x01" * 400, now_ms=1000)  # and 50 ms more
    pb.push_mark("A:2", now_ms=1000)
    pb.advance(1300)  # A played 1000..1150, then nothing
    pb.push_media(b"\x02" * 1600, now_ms=1300)  # item B: 200 ms; its mark is late
    pb.advance(1333.375)
    pb.push_mark("B:1", now_ms=1333.375)  # labels what already played, too
    pb.push_media(b"\x03" * 800, now_ms=1340)  # item C, no mark before the clear
    pb.clear(now_ms=1540.125)
    (clear,) = pb.clears
    # B played 1300..1500, C 1500..1540.125: to the sample, no frame rounding.
    assert clear.played_ms_by_item == {"A": 150, "B": 200, None: 40.125}
    assert pb.played_spans() == [
        PlayedSpan("A", 1000, 1150),
        PlayedSpan("B", 1300, 1500),
        PlayedSpan(None, 1500, 1540.125),
    ]
    spans = pb.played_spans()
    assert played_ms(spans, "B", until_ms=1333.375) == 33.375
    assert played_ms(spans, "A", until_ms=900) == 0
    assert played_ms(spans, "A") == 150
    # a later mark does not relabel audio the clear already dropped
    pb.push_mark("C:1", now_ms=1600)
    assert pb.played_ms_by_item() == {"A": 150, "B": 200, None: 40.125}


def test_mark_item_is_the_name_up_to_the_last_colon() -> None:
    assert mark_item("item_abc:17") == "item_abc"
    assert mark_item("a:b:3") == "a:b"
    assert mark_item("plain") == "plain"


def test_the_per_item_record_is_bounded() -> None:
    pb = Playback(max_spans=2, max_items=1)
    for i in range(3):
        pb.push_media(b"\x01" * 80, now_ms=i * 100)
        pb.push_mark(f"i{i}:1", now_ms=i * 100)
        pb.advance(i * 100 + 50)
    assert pb.played_ms_by_item() == {"i0": 10, None: 20}
    assert len(pb.played_spans()) == 2 and pb.spans_dropped == 1
