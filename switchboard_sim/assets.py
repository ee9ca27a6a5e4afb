"""Bundled caller recordings for the simulator (``switchboard_sim/recordings/``, not a package).

Made deterministically by ``scripts/make_recordings.py`` (Piper, the CC0 voice
``en_US-joe-medium``; a dev-time generator, the service never imports Piper): 8 kHz
16-bit mono PCM WAV with 300 ms of silence each side. ``transcripts.yaml`` maps each
file name to its reference text and ``SHA256SUMS`` holds each WAV's SHA-256.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from app.audio import read_wav_as_ulaw

RECORDINGS_DIR = Path(__file__).resolve().parent / "recordings"


def recording_path(name: str) -> Path:
    """Path of a bundled recording; ``name`` with or without ``.wav`` (e.g. ``"goodbye"``).

    Raises ``FileNotFoundError`` for an unknown name.
    """
    file = name if name.endswith(".wav") else f"{name}.wav"
    path = RECORDINGS_DIR / file
    if path.parent != RECORDINGS_DIR or not path.is_file():
        raise FileNotFoundError(f"no bundled recording {name!r} in {RECORDINGS_DIR}")
    return path


def recording_ulaw(name: str) -> bytes:
    """A bundled recording as 8 kHz μ-law (8 bytes per ms), for ``CallScript.caller_audio``."""
    return read_wav_as_ulaw(recording_path(name))


def transcripts() -> dict[str, str]:
    """File name → reference transcript of every bundled recording."""
    data = yaml.safe_load((RECORDINGS_DIR / "transcripts.yaml").read_text())
    if not isinstance(data, dict):
        raise ValueError("transcripts.yaml is not a mapping")
    return {str(k): str(v) for k, v in data.items()}
