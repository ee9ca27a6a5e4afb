"""DTMF tones out: keypad digits as G.711 μ-law audio, for ``send_dtmf`` on calls that
meet an IVR.

Each symbol is the sum of one low-group and one high-group sine (ITU-T Q.23, Table 1:
697/770/852/941 Hz × 1209/1336/1477/1633 Hz), each at ``level_dbm0`` (default −7 dBm0,
inside Q.23 §4's range for both groups); a tone lasts ``tone_ms`` and is followed by
``gap_ms`` of silence (ITU-T Q.24: receivers must accept ≥ 40 ms of tone and ≥ 40 ms of
pause; the defaults, 100 ms and 100 ms, sit well above both). ``w`` is a 500 ms pause, as
in Twilio's ``sendDigits``. Pure: digits in, μ-law bytes (8 kHz, 8 bytes per ms) out.
"""

from __future__ import annotations

import re

import numpy as np

from app.audio import SAMPLE_RATE, pcm16_to_ulaw

LOW = (697, 770, 852, 941)
HIGH = (1209, 1336, 1477, 1633)
#: Symbol → (low Hz, high Hz): the Q.23 keypad, row by row.
FREQUENCIES: dict[str, tuple[int, int]] = {
    key: (LOW[i // 4], HIGH[i % 4]) for i, key in enumerate("123A456B789C*0#D")
}
#: ``w``: a pause (ms), as Twilio's ``sendDigits`` has it.
PAUSE_MS = 500
#: What ``send_dtmf`` accepts: keypad symbols and ``w`` pauses, at most 32.
DIGITS_RE = re.compile(r"^[0-9A-D*#w]{1,32}$")
#: Peak of a 0 dBm0 sine in 16-bit linear terms (G.711 μ-law: +3.17 dBm0 is full scale
#: 32124), so each tone's peak is this × 10^(level/20).
_ZERO_DBM0_PEAK = 32124 / 10 ** (3.17 / 20)


def tones(digits: str, *, tone_ms: int = 100, gap_ms: int = 100, level_dbm0: float = -7.0) -> bytes:
    """The μ-law audio (8 kHz) of ``digits``: ``tone_ms`` of each symbol's dual tone,
    then ``gap_ms`` of silence; ``w`` adds a ``PAUSE_MS`` pause. Raises ``ValueError``
    for a symbol outside ``DIGITS_RE``'s set or a tone or gap under 40 ms (Q.24)."""
    if DIGITS_RE.match(digits) is None:
        raise ValueError(f"DTMF digits must match {DIGITS_RE.pattern}")
    if tone_ms < 40 or gap_ms < 40:
        raise ValueError("DTMF tones and pauses last at least 40 ms (ITU-T Q.24)")
    peak = _ZERO_DBM0_PEAK * 10 ** (level_dbm0 / 20)
    t = np.arange(tone_ms * SAMPLE_RATE // 1000) / SAMPLE_RATE
    gap = np.zeros(gap_ms * SAMPLE_RATE // 1000)
    pause = np.zeros(PAUSE_MS * SAMPLE_RATE // 1000)
    parts: list[np.ndarray] = []
    for symbol in digits:
        if symbol == "w":
            parts.append(pause)
            continue
        low, high = FREQUENCIES[symbol]
        parts.append(peak * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)))
        parts.append(gap)
    pcm = np.round(np.concatenate(parts)).clip(-32768, 32767).astype("<i2")
    return pcm16_to_ulaw(pcm.tobytes())
