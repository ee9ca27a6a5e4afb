"""Bundled recordings: present, 8 kHz mono 16-bit, transcribed, reproducible."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from app.audio import ULAW_SILENCE
from app.sim.assets import RECORDINGS_DIR, recording_path, recording_ulaw, transcripts

NAMES = ["order_status", "goodbye", "agent_please", "interrupt"]


def test_every_recording_is_8khz_mono_pcm16_with_a_transcript() -> None:
    texts = transcripts()
    assert texts["order_status.wav"] == "What's the status of order 1042?"
    assert sorted(texts) == sorted(f"{n}.wav" for n in NAMES)
    for name in NAMES:
        with wave.open(str(recording_path(name)), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert 1.0 < w.getnframes() / 8000 < 5.0
        ulaw = recording_ulaw(name)
        assert ulaw[:200] == ULAW_SILENCE * 200  # leading silence (~300 ms)
        assert ulaw.count(ULAW_SILENCE) < len(ulaw) // 2


def test_unknown_recording() -> None:
    with pytest.raises(FileNotFoundError):
        recording_path("nope")
    with pytest.raises(FileNotFoundError):
        recording_path("../carrier.py")


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng, sox"
)
def test_make_recordings_is_deterministic(tmp_path: Path) -> None:
    from scripts.make_recordings import main

    assert main(["--out", str(tmp_path)]) == 0
    for name in NAMES:
        assert (tmp_path / f"{name}.wav").read_bytes() == recording_path(name).read_bytes()
    assert (tmp_path / "transcripts.yaml").read_text() == (
        RECORDINGS_DIR / "transcripts.yaml"
    ).read_text()
