"""G.711 μ-law 8 kHz audio helpers: sizes, durations and WAV input/output.

μ-law is one byte per sample at 8000 samples/s, so 1 ms = 8 bytes and a 20 ms
Twilio frame is 160 bytes (ITU-T G.711; docs/protocols.md §2 "Media Streams messages").
The bridge never transcodes; these helpers serve the engine, the simulator and tests.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 13):  # pragma: no cover - audioop-lts provides it
    import audioop
else:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

SAMPLE_RATE = 8000
BYTES_PER_MS = 8
FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS  # 160
#: μ-law code for digital silence (linear 0).
ULAW_SILENCE = b"\xff"


def ms_to_bytes(ms: float) -> int:
    """Bytes of 8 kHz μ-law in ``ms`` milliseconds."""
    return int(ms * BYTES_PER_MS)


def bytes_to_ms(n: int) -> float:
    """Milliseconds of 8 kHz μ-law in ``n`` bytes."""
    return n / BYTES_PER_MS


def b64_decoded_len(b64: str) -> int:
    """Length in bytes of the data a base64 string decodes to, without decoding it."""
    n = len(b64)
    if n == 0:
        return 0
    pad = 2 if b64.endswith("==") else 1 if b64.endswith("=") else 0
    return n * 3 // 4 - pad


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """μ-law bytes → 16-bit little-endian PCM at the same rate (2 bytes per sample)."""
    return audioop.ulaw2lin(ulaw, 2)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM → μ-law (1 byte per sample)."""
    return audioop.lin2ulaw(pcm, 2)


def resample_pcm16(pcm: bytes, rate_in: int, rate_out: int, channels: int = 1) -> bytes:
    """Resample 16-bit PCM from ``rate_in`` Hz to ``rate_out`` Hz (linear, audioop.ratecv)."""
    if rate_in == rate_out:
        return pcm
    out, _ = audioop.ratecv(pcm, 2, channels, rate_in, rate_out, None)
    return out


#: Low-pass cut-off before resampling to 8 kHz (Hz): below the 4 kHz Nyquist frequency.
LOWPASS_HZ = 3600


def lowpass_pcm16(pcm: bytes, rate: int) -> bytes:
    """Windowed-sinc low-pass (101 taps, Hamming) at :data:`LOWPASS_HZ` of 16-bit mono PCM
    at ``rate`` Hz; ``pcm`` unchanged when ``rate`` is 8000 Hz or less."""
    if rate <= SAMPLE_RATE or not pcm:
        return pcm
    import numpy as np  # only the engine and the simulator resample; the bridge never loads it

    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    n = np.arange(-50, 51)
    cutoff = LOWPASS_HZ / rate
    taps: np.ndarray[Any, np.dtype[np.float64]] = 2 * cutoff * np.sinc(2 * cutoff * n)
    taps *= np.hamming(len(n))
    taps /= taps.sum()
    y = np.convolve(x, taps, mode="same")
    return bytes(np.clip(np.round(y), -32768, 32767).astype(np.int16).tobytes())


def pcm16_to_ulaw_8k(pcm: bytes, rate: int) -> bytes:
    """16-bit mono PCM at ``rate`` Hz → 8 kHz μ-law: anti-alias low-pass
    (:func:`lowpass_pcm16`), resample (:func:`resample_pcm16`), encode (ITU-T G.711)."""
    return pcm16_to_ulaw(resample_pcm16(lowpass_pcm16(pcm, rate), rate, SAMPLE_RATE))


def read_wav_as_ulaw(path: Path) -> bytes:
    """Read a PCM WAV (any rate, mono or stereo, 8/16-bit) or a μ-law WAV as 8 kHz μ-law.

    Raises ``ValueError`` for a format it cannot convert.
    """
    with open(path, "rb") as fh:
        header = fh.read(64)
    if b"WAVE" in header[:12] and header[20:22] == b"\x07\x00":  # WAVE_FORMAT_MULAW
        return _read_ulaw_wav(path)
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    if width == 1:
        frames = audioop.bias(frames, 1, -128)
        frames = audioop.lin2lin(frames, 1, 2)
    elif width != 2:
        frames = audioop.lin2lin(frames, width, 2)
    if channels == 2:
        frames = audioop.tomono(frames, 2, 0.5, 0.5)
    elif channels != 1:
        raise ValueError(f"{path}: {channels} channels not supported")
    return pcm16_to_ulaw(resample_pcm16(frames, rate, SAMPLE_RATE))


def _read_ulaw_wav(path: Path) -> bytes:
    data = path.read_bytes()
    pos = 12
    rate = SAMPLE_RATE
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            rate = int.from_bytes(body[4:8], "little")
        elif cid == b"data":
            if rate != SAMPLE_RATE:
                pcm = resample_pcm16(ulaw_to_pcm16(body), rate, SAMPLE_RATE)
                return pcm16_to_ulaw(pcm)
            return body
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def write_wav_from_ulaw(path: Path, ulaw: bytes) -> None:
    """Write 8 kHz μ-law as a 16-bit PCM mono WAV (plays everywhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(ulaw_to_pcm16(ulaw))
