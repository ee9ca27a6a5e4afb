"""The offline recorder's two tracks (app.call.recording) and the file object store."""

from __future__ import annotations

import base64
import io
import time
import wave
from pathlib import Path

import pytest

from app.call.recording import CallRecording
from app.store.objects import FileObjectStore, recording_key, sweep


def b64(byte: int, ms: int) -> str:
    return base64.b64encode(bytes([byte]) * (ms * 8)).decode()


def test_agent_audio_is_placed_where_it_plays_and_clear_drops_the_rest() -> None:
    r = CallRecording(max_ms=60_000)
    for _ in range(50):  # 1 s of caller frames
        r.inbound(b64(0x10, 20))
    r.outbound(b64(0x20, 300), at_ms=200)  # plays 200..500
    r.outbound(b64(0x30, 300), at_ms=210)  # queued behind: 500..800
    r.clear(at_ms=600)  # barge-in at 600: 600..800 never played
    r.outbound(b64(0x40, 100), at_ms=900)
    assert len(r.caller) == 8000
    agent = bytes(r.agent)
    assert agent[: 200 * 8] == b"\xff" * 1600
    assert agent[200 * 8 : 500 * 8] == b"\x20" * 2400
    assert agent[500 * 8 : 600 * 8] == b"\x30" * 800
    assert agent[600 * 8 : 900 * 8] == b"\xff" * 2400
    assert agent[900 * 8 :] == b"\x40" * 800
    with wave.open(io.BytesIO(r.wav())) as w:
        assert w.getnchannels() == 2 and w.getnframes() == 8000


def test_muted_frames_are_silence_of_the_same_length() -> None:
    """During a keypad capture the caller's tones are not recorded."""
    r = CallRecording(max_ms=60_000)
    r.inbound(b64(0x10, 20))
    r.inbound(b64(0x10, 20), muted=True)
    r.inbound(b64(0x10, 20))
    assert bytes(r.caller) == b"\x10" * 160 + b"\xff" * 160 + b"\x10" * 160


def test_bounded_and_bad_payloads_keep_the_timeline() -> None:
    r = CallRecording(max_ms=100)
    r.inbound("!!not base64!!")
    for _ in range(10):
        r.inbound(b64(0x10, 20))
    assert len(r.caller) == 800 and r.truncated


def test_file_store_put_range_delete_sweep(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path)
    key = recording_key("CA" + "a" * 32)
    url = store.put(key, b"0123456789")
    assert url.startswith("file://") and store.size(key) == 10
    assert store.read(key, 2, 4) == b"234"
    assert sweep(store, 3600) == []
    assert sweep(store, 3600, now_s=time.time() + 3601) == [key]
    assert store.size(key) is None and not store.delete(key)
    with pytest.raises(ValueError):
        store.put("../escape", b"x")
    with pytest.raises(ValueError):
        recording_key("../CA")
