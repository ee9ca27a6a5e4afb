"""DTMF tones out (app.call.dtmf) and the simulator's Goertzel receiver (switchboard_sim.dtmf)."""

from __future__ import annotations

import numpy as np
import pytest

from app.audio import ULAW_SILENCE, ulaw_to_pcm16
from app.call.dtmf import FREQUENCIES, tones
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.dtmf import detect

ALL = "0123456789*#ABCD"


def test_every_key_is_its_two_q23_frequencies() -> None:
    for key, (low, high) in FREQUENCIES.items():
        pcm = np.frombuffer(ulaw_to_pcm16(tones(key, tone_ms=1000)), dtype="<i2")[:8000]
        spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))  # 1 Hz bins
        peaks = sorted(int(f) for f in np.argsort(spectrum)[-2:])
        assert peaks == [low, high], key
        # Each tone near −7 dBm0, no clipping: the peak stays well inside 16 bits.
        assert 12_000 < np.abs(pcm).max() < 24_000


def test_timing_is_tone_then_pause() -> None:
    audio = tones("12", tone_ms=100, gap_ms=60)
    assert len(audio) == 2 * (100 + 60) * 8
    assert audio[100 * 8 : 160 * 8] == ULAW_SILENCE * (60 * 8)
    assert len(tones("1w1")) == (200 + 500 + 200) * 8


def test_round_trip_through_the_receiver() -> None:
    silence = ULAW_SILENCE * 800
    assert detect(silence + tones(ALL) + silence) == ALL
    # Q.24's shortest: 40 ms tones and 40 ms pauses; a key pressed twice is heard twice.
    assert detect(tones("5w55", tone_ms=40, gap_ms=40)) == "555"


def test_speech_is_not_heard_as_keys() -> None:
    for name in ("order_status", "agent_please", "goodbye", "interrupt"):
        assert detect(recording_ulaw(name)) == ""


@pytest.mark.parametrize("bad", [("12x", 100, 100), ("", 100, 100), ("1", 30, 100)])
def test_bad_input_is_refused(bad: tuple[str, int, int]) -> None:
    digits, tone_ms, gap_ms = bad
    with pytest.raises(ValueError):
        tones(digits, tone_ms=tone_ms, gap_ms=gap_ms)
