"""Minimal RFC 6455 framing for the bench's own peers (load generator, echo engine).

The bench drives hundreds of calls from one core, so its peers must cost far less per
message than the server they measure: this module frames and parses WebSocket messages
straight on an ``asyncio`` transport, with no per-message tasks, futures or queues.

It is a test tool, not a general WebSocket library: text and binary messages,
fragmentation, ping/pong and close are handled; extensions and subprotocols are not.
Client frames are masked with an all-zero key, which RFC 6455 §5.3 allows on the wire
(servers cannot and do not check the key's entropy; it only guards against proxy cache
poisoning, irrelevant on loopback) and makes masking free.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

try:  # the C extension is optional in websockets (as websockets.frames does)
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - pure-Python build of websockets
    from websockets.utils import apply_mask

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK = b"\x00\x00\x00\x00"
#: Largest message accepted (bytes); bigger ones fail the connection.
MAX_MESSAGE_BYTES = 1 << 20


T = TypeVar("T")


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed (it ships with uvicorn[standard]), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class FrameError(Exception):
    """The peer broke the framing rules (or sent a message over ``MAX_MESSAGE_BYTES``)."""


def frame(payload: bytes, opcode: int = OP_TEXT, *, client: bool = False) -> bytes:
    """One final frame carrying ``payload``; ``client=True`` masks it (zero key, see above)."""
    n = len(payload)
    head = bytes((0x80 | opcode,))
    mask_bit = 0x80 if client else 0
    if n < 126:
        head += bytes((mask_bit | n,))
    elif n < 1 << 16:
        head += bytes((mask_bit | 126,)) + n.to_bytes(2, "big")
    else:
        head += bytes((mask_bit | 127,)) + n.to_bytes(8, "big")
    if client:
        head += _ZERO_MASK
    return head + payload


def close_frame(code: int = 1000, *, client: bool = False) -> bytes:
    """A close frame with status ``code`` and no reason."""
    return frame(code.to_bytes(2, "big"), OP_CLOSE, client=client)


class FrameReader:
    """Incremental frame parser: ``feed(data)`` calls ``on_message(opcode, payload)`` for
    every complete text/binary message, answers pings through ``write`` and reports a
    close through ``on_close(code)``. ``masked``: frames from a client (server side)."""

    __slots__ = ("_buf", "_frag", "_frag_op", "masked", "on_close", "on_message", "write")

    def __init__(
        self,
        on_message: Callable[[int, bytes], None],
        write: Callable[[bytes], None],
        on_close: Callable[[int], None],
        *,
        masked: bool,
    ) -> None:
        self._buf = b""
        self._frag: list[bytes] = []
        self._frag_op = 0
        self.on_message = on_message
        self.write = write
        self.on_close = on_close
        self.masked = masked

    def feed(self, data: bytes) -> None:
        """Parse ``data`` (any split of the byte stream). Raises ``FrameError``."""
        buf = self._buf + data if self._buf else data
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            at = pos + 2
            if n == 126:
                if end - at < 2:
                    break
                n = int.from_bytes(buf[at : at + 2], "big")
                at += 2
            elif n == 127:
                if end - at < 8:
                    break
                n = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            if n > MAX_MESSAGE_BYTES:
                raise FrameError(f"frame of {n} bytes")
            key = b""
            if b1 & 0x80:
                at += 4
                key = buf[at - 4 : at]
            elif self.masked:
                raise FrameError("unmasked client frame")
            if end - at < n:
                break
            payload = buf[at : at + n]
            pos = at + n
            if key and key != _ZERO_MASK:
                payload = apply_mask(payload, key)
            if b0 == 0x81 and not self._frag:
                self.on_message(OP_TEXT, payload)  # the common case: a whole text message
            else:
                self._frame(b0 & 0x80, b0 & 0x0F, payload)
        self._buf = buf[pos:] if pos < end else b""

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode >= OP_CLOSE:
            if opcode == OP_PING:
                self.write(frame(payload, OP_PONG, client=not self.masked))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.on_close(code)
            return
        if opcode == OP_CONT:
            if not self._frag:
                raise FrameError("continuation without a first fragment")
            self._frag.append(payload)
            if sum(map(len, self._frag)) > MAX_MESSAGE_BYTES:
                raise FrameError("fragmented message too large")
            if fin:
                parts, self._frag = self._frag, []
                self.on_message(self._frag_op, b"".join(parts))
            return
        if fin:
            self.on_message(opcode, payload)
        else:
            self._frag, self._frag_op = [payload], opcode


def client_key() -> str:
    """A fresh ``Sec-WebSocket-Key`` (16 random bytes, base64)."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def client_handshake(host: str, path: str, key: str, headers: dict[str, str]) -> bytes:
    """The HTTP/1.1 upgrade request a client sends."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_http_head(head: bytes) -> tuple[str, dict[str, str]]:
    """(first line, lower-cased headers) of an HTTP head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def server_handshake_response(key: str) -> bytes:
    """``101 Switching Protocols`` for a client's ``Sec-WebSocket-Key``."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()
