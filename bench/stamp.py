"""Sequence stamps inside μ-law frames: how the bench tracks each frame end to end.

The load generator writes a call index and a per-call frame sequence number into the
first 6 bytes of every 160-byte (20 ms) μ-law frame; the rest is silence (0xFF). The
bridge relays payloads untouched, the echo engine returns the same bytes as assistant
audio, so the stamp read back at the carrier identifies the frame and its send time.

6 bytes are 8 base64 characters with no padding, so a stamp is read from the first 8
characters of the payload and the stamped payload is those 8 characters plus a constant.
"""

from __future__ import annotations

import base64
import binascii
import struct

from app.audio import FRAME_BYTES, ULAW_SILENCE

STAMP_BYTES = 6
STAMP_CHARS = 8
_PACK = struct.Struct(">IH")
_TAIL = base64.b64encode(b"\x00" * STAMP_BYTES + ULAW_SILENCE * (FRAME_BYTES - STAMP_BYTES))[
    STAMP_CHARS:
].decode()


def stamped_payload(call: int, seq: int) -> str:
    """Base64 of one 160-byte frame stamped with ``call`` (0..65535) and ``seq`` (0..2³²-1)."""
    return binascii.b2a_base64(_PACK.pack(seq, call), newline=False).decode() + _TAIL


def read_stamp(payload: str) -> tuple[int, int]:
    """(call, seq) of a stamped base64 payload. Raises ``ValueError`` if it has no stamp."""
    try:
        seq, call = _PACK.unpack(binascii.a2b_base64(payload[:STAMP_CHARS]))
    except (binascii.Error, struct.error) as exc:
        raise ValueError(f"payload carries no stamp: {exc}") from None
    return call, seq


def payload_bytes(payload: str) -> int:
    """Decoded length (bytes) of a canonical base64 string, without decoding it."""
    n = len(payload)
    if n == 0:
        return 0
    return n // 4 * 3 - (payload[-1] == "=") - (payload[-2] == "=")
