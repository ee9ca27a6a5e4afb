"""DTMF detection in the agent's audio (what an IVR on the far end would hear).

The classic receiver: Goertzel bin powers at the eight ITU-T Q.23 frequencies on
205-sample blocks (25.6 ms at 8 kHz; bins ~39 Hz apart, so the eight fall in separate
bins), computed for all blocks at once as the single-bin DFT that Goertzel's recurrence
evaluates. Blocks start every ``HOP`` samples; a symbol counts when both its tones carry
most of a block's energy with under 8 dB of twist, is reported once it holds for two
blocks in a row (so a 40 ms tone, Q.24's minimum, is heard) and again only after a block
without it."""

from __future__ import annotations

import numpy as np

from app.audio import SAMPLE_RATE, ulaw_to_pcm16
from app.call.dtmf import FREQUENCIES, HIGH, LOW

BLOCK = 205
HOP = 64
_BY_PAIR = {pair: key for key, pair in FREQUENCIES.items()}
_FREQS = (*LOW, *HIGH)
_n = np.arange(BLOCK)
#: One row per frequency: e^{-j2πkn/N} for the bin k nearest it (Goertzel's k).
_BASIS = np.exp(
    -2j * np.pi * np.outer([round(BLOCK * f / SAMPLE_RATE) for f in _FREQS], _n) / BLOCK
)
#: Below this mean square (16-bit units) a block is silence (about −50 dBm0).
_SILENCE = 1000.0


def detect(ulaw: bytes) -> str:
    """The DTMF symbols heard in 8 kHz μ-law audio, in order (pauses not reported)."""
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.float64)
    if len(pcm) < BLOCK:
        return ""
    blocks = np.lib.stride_tricks.sliding_window_view(pcm, BLOCK)[::HOP]
    power = np.abs(blocks @ _BASIS.T) ** 2  # (blocks, 8): Goertzel's |X(k)|²
    energy = np.einsum("ij,ij->i", blocks, blocks)
    low, high = power[:, :4], power[:, 4:]
    li, hi = low.argmax(axis=1), high.argmax(axis=1)
    lp = low[np.arange(len(li)), li]
    hp = high[np.arange(len(hi)), hi]
    # A pure tone of energy E puts ≈ N·E/2 in its bin: the pair must hold most of it.
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (lp + hp) / (BLOCK / 2 * energy)
        twist = lp / hp
    ok = (energy / BLOCK > _SILENCE) & (share > 0.6) & (twist > 10**-0.8) & (twist < 10**0.8)
    out: list[str] = []
    prev: str | None = None
    held = 0
    for i in range(len(ok)):
        sym = _BY_PAIR[(LOW[li[i]], HIGH[hi[i]])] if ok[i] else None
        if sym is not None and sym == prev:
            held += 1
            if held == 2:
                out.append(sym)
        else:
            held = 1 if sym is not None else 0
        prev = sym
    return "".join(out)
