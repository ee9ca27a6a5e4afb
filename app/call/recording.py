"""Offline call recording: the two tracks the bridge sees, written as one stereo WAV.

Left channel: the caller (every inbound ``media`` payload, in order: 20 ms frames on the
stream's own timeline, which the transcript's user offsets use). Right channel: the
agent as the caller heard it — each chunk of outbound audio is placed where the carrier
plays it (after what is queued, never before the present, on the session's clock, which
the transcript's assistant offsets use) and a ``clear`` drops what had not played yet.
While ``collect_digits`` runs the caller's track is silence (keypad tones are audio too).
Both tracks start at the stream's ``start``. Bounded: ``max_ms`` of audio per track, the
rest not recorded. Costs the per-frame path a base64 decode and a ``bytearray`` append.
"""

from __future__ import annotations

import binascii
import io
import wave
from base64 import b64decode
from typing import Any

import numpy as np

from app.audio import BYTES_PER_MS, SAMPLE_RATE, ULAW_SILENCE, b64_decoded_len, ulaw_to_pcm16


class CallRecording:
    """The two tracks of one call (8 kHz μ-law bytes, 8 per ms)."""

    def __init__(self, max_ms: int) -> None:
        self.max_bytes = max_ms * BYTES_PER_MS
        self.caller = bytearray()
        self.agent = bytearray()
        self._agent_end = 0  # where queued agent audio ends (bytes on the timeline)
        self.truncated = False

    def inbound(self, payload_b64: str, muted: bool = False) -> None:
        """One caller frame (the ``media.payload`` string); ``muted``: recorded as
        silence of the same length (a secure keypad capture is running)."""
        if len(self.caller) >= self.max_bytes:
            self.truncated = True
            return
        if muted:
            self.caller += ULAW_SILENCE * b64_decoded_len(payload_b64)
            return
        try:
            self.caller += b64decode(payload_b64)
        except (binascii.Error, ValueError):
            self.caller += ULAW_SILENCE * 160  # keep the timeline: a frame's worth

    def outbound(self, payload_b64: str, at_ms: float) -> None:
        """Agent audio sent to the carrier at ``at_ms`` (ms since the stream started)."""
        now = int(at_ms) * BYTES_PER_MS
        start = max(self._agent_end, now)
        if start >= self.max_bytes:
            self.truncated = True
            return
        try:
            chunk = b64decode(payload_b64)
        except (binascii.Error, ValueError):
            return
        agent = self.agent
        if len(agent) < start:
            agent += ULAW_SILENCE * (start - len(agent))
        agent[start : start + len(chunk)] = chunk
        self._agent_end = start + len(chunk)

    def clear(self, at_ms: float) -> None:
        """``clear`` sent at ``at_ms``: what had not played is gone."""
        now = int(at_ms) * BYTES_PER_MS
        if len(self.agent) > now:
            del self.agent[now:]
        self._agent_end = min(self._agent_end, now)

    def wav(self) -> bytes:
        """Both tracks as a 16-bit PCM stereo WAV at 8 kHz (left caller, right agent),
        padded with silence to the longer one."""
        n = max(len(self.caller), len(self.agent))
        left = bytes(self.caller) + ULAW_SILENCE * (n - len(self.caller))
        right = bytes(self.agent) + ULAW_SILENCE * (n - len(self.agent))
        pcm = np.empty(2 * n, dtype="<i2")
        pcm[0::2] = np.frombuffer(ulaw_to_pcm16(left), dtype="<i2")
        pcm[1::2] = np.frombuffer(ulaw_to_pcm16(right), dtype="<i2")
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.tobytes())
        return out.getvalue()


def carrier_records(settings: Any) -> bool:
    """Twilio, not the bridge, records a flow's calls (``Settings.recording_source``)."""
    source = settings.recording_source
    return bool(source == "twilio" or (source == "auto" and not settings.twilio_api_base_url))
