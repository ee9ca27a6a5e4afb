"""Bundled recordings: present, 8 kHz mono 16-bit, transcribed, checksummed, reproducible."""

from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import pytest

from app.audio import ULAW_SILENCE
from switchboard_engine.asr import read_sha256sums, sha256_file
from switchboard_sim.assets import RECORDINGS_DIR, recording_path, recording_ulaw, transcripts

NAMES = ["order_status", "goodbye", "agent_please", "interrupt"]


def test_every_recording_is_8khz_mono_pcm16_with_a_transcript() -> None:
    texts = transcripts()
    assert texts["order_status.wav"] == "What's the status of order ten forty-two?"
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


def test_every_recording_matches_its_recorded_checksum() -> None:
    """The WAVs are the generator's output, unchanged (SHA256SUMS, written with them)."""
    sums = read_sha256sums(RECORDINGS_DIR / "SHA256SUMS")
    assert sorted(sums) == sorted(transcripts())
    for name, want in sums.items():
        assert sha256_file(RECORDINGS_DIR / name) == want, f"{name} differs from SHA256SUMS"


def test_transcripts_are_the_generators() -> None:
    from scripts.make_recordings import UTTERANCES, transcripts_yaml

    assert transcripts() == UTTERANCES
    assert (RECORDINGS_DIR / "transcripts.yaml").read_text() == transcripts_yaml()


@pytest.mark.skipif(
    importlib.util.find_spec("piper") is None, reason="needs piper-tts (a dev-time generator)"
)
def test_make_recordings_is_deterministic(tmp_path: Path) -> None:
    """Two runs give the same bytes. (Not compared with the committed files: another CPU
    or onnxruntime build may round Piper's output differently; ``--check`` tells.)"""
    from scripts.make_recordings import GeneratorError, check_pins, main

    try:
        check_pins()
    except GeneratorError as exc:
        pytest.skip(f"not the pinned generator: {exc}")
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
