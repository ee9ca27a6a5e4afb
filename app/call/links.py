"""The two sockets of a call, with a direct path for the per-frame traffic.

A call moves 50 inbound frames a second and as many outbound chunks and mark echoes.
Through the usual layers each message costs an ASGI queue put/get, a task wake-up, a
Starlette wrapper, a ``send_context``/``drain`` and one ``write`` syscall per message.
Here the message goes from the WebSocket parser straight into the bridge's handler, and
the bridge's sends go straight to the socket, several messages in one ``write``:

- ``DirectWebSocketProtocol``: uvicorn's ``websockets-sansio`` protocol (the same
  well-kept ``websockets`` sans-I/O parser, handshake, pings and close handling) that
  offers the route, as the ASGI scope extension ``EXTENSION``, a way to receive text
  and binary messages by callback and to send text synchronously. ``switchboard
  serve`` runs it (``--ws direct``, the default).
- ``CarrierLink``: the carrier socket as the bridge sees it. With the direct protocol
  it attaches the callback; behind any other ASGI server it falls back to the ASGI
  ``receive``/``send`` calls (a reader loop, and a writer task with a bounded queue
  where control messages jump ahead of audio).
- ``RealtimeConnection``: a ``websockets`` client connection (connect, TLS, proxy,
  handshake, keepalive and close all stay with ``websockets``) whose text messages go
  to a callback instead of the ``recv()`` queue, and with a synchronous ``send_now``.

Both also frame the common case themselves (RFC 6455 §5.2): after the HTTP handshake
(whose head is handed to ``websockets`` byte for byte) the incoming stream is cut into
frames here; a final, unfragmented text or binary frame, masked as the side requires,
goes straight to the callback, and every other frame (ping, pong, close, fragments,
protocol errors, frames over the size limit) is handed to the ``websockets`` protocol
whole, so its state machine always sits on a frame boundary and keeps doing what it
does. Outgoing messages are framed here too (clients mask with keys drawn from a
``urandom`` pool instead of one ``getrandom`` call per frame). That halves the Python
work per message; the ``websockets`` code still owns the connection.

A synchronous send never waits: when a peer stops reading, its bytes pile up in the
transport's buffer, and past ``max_buffer_bytes`` the send raises ``LinkStalled`` so
the bridge ends the call instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State

try:  # the C extension is optional in websockets (as websockets.frames does)
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - pure-Python build of websockets
    from websockets.utils import apply_mask

#: ASGI scope extension under which ``DirectWebSocketProtocol`` offers itself.
EXTENSION = "switchboard.direct_websocket"
#: Rough size of one media-path message (bytes): buffer limits are set in messages.
MESSAGE_BYTES = 400
#: Realtime messages kept while the bridge is not attached yet (connection set-up).
EARLY_MAX = 256

#: Longest HTTP head accepted before the frames start (bytes); beyond it the split is
#: left to ``websockets``, which refuses such a handshake anyway.
MAX_HEAD_BYTES = 16_384
#: Masking keys drawn per ``urandom`` call (4 bytes a frame).
MASK_POOL_BYTES = 4096

MessageHandler = Callable[[bytes], None]


def _frame_limit(protocol: Protocol) -> int:
    """Largest single-frame payload ``protocol`` accepts (bytes; websockets 13 to 17)."""
    limits = [
        getattr(protocol, name, None)
        for name in ("max_message_size", "max_fragment_size", "max_size")
    ]
    ints = [v for v in limits if isinstance(v, int)]
    return min(ints) if ints else 1 << 62


def _fragment_attr(protocol: Protocol) -> str:
    """The protocol's attribute holding the size of a fragmented message in progress (None
    between messages): ``current_size`` since websockets 16, ``cur_size`` before."""
    return "current_size" if hasattr(protocol, "current_size") else "cur_size"


def _header(n: int, opcode_byte: int, mask_bit: int) -> bytes:
    """A frame header for an ``n``-byte payload (RFC 6455 §5.2)."""
    if n < 126:
        return bytes((opcode_byte, mask_bit | n))
    if n < 65536:
        return bytes((opcode_byte, mask_bit | 126)) + n.to_bytes(2, "big")
    return bytes((opcode_byte, mask_bit | 127)) + n.to_bytes(8, "big")


class _Splitter:
    """Cuts one side's incoming byte stream into WebSocket frames.

    ``feed(data)`` calls ``fast(payload)`` for every final, unfragmented text/binary frame
    (unmasked, when ``masked`` is set) while ``ready()`` holds, and ``slow(frame_bytes)``
    with each other complete frame. A frame over ``limit`` goes to ``slow`` with the rest
    of the stream, for good (``websockets`` fails the connection on it).
    """

    __slots__ = ("_buf", "bypass", "fast", "limit", "masked", "ready", "slow")

    def __init__(
        self,
        fast: MessageHandler,
        slow: Callable[[bytes], None],
        ready: Callable[[], bool],
        *,
        masked: bool,
        limit: int,
    ) -> None:
        self._buf = b""
        self.fast, self.slow, self.ready = fast, slow, ready
        self.masked = masked
        self.limit = limit
        self.bypass = False

    def feed(self, data: bytes) -> None:
        if self.bypass:
            self.slow(data)
            return
        buf = self._buf + data if self._buf else data
        n = len(buf)
        pos = 0
        mask_bit = 0x80 if self.masked else 0
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            size = b1 & 0x7F
            at = pos + 2
            if size == 126:
                if n - at < 2:
                    break
                size = int.from_bytes(buf[at : at + 2], "big")
                at += 2
            elif size == 127:
                if n - at < 8:
                    break
                size = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            if size > self.limit:
                self.bypass = True
                self._buf = b""
                self.slow(buf[pos:])
                return
            if b1 & 0x80:
                at += 4
            end = at + size
            if end > n:
                break
            if (b0 == 0x81 or b0 == 0x82) and (b1 & 0x80) == mask_bit and self.ready():
                if mask_bit:
                    self.fast(apply_mask(buf[at:end], buf[at - 4 : at]))
                else:
                    self.fast(buf[at:end])
            else:
                self.slow(buf[pos:end])
            pos = end
        self._buf = buf[pos:] if pos < n else b""


class _HeadThenFrames:
    """Hands the HTTP handshake head to ``websockets`` byte for byte, then the frames
    to a ``_Splitter`` (so both agree on where every frame starts)."""

    __slots__ = ("_head", "splitter")

    def __init__(self) -> None:
        self._head = b""
        self.splitter: _Splitter | None = None

    def split_head(self, data: bytes) -> tuple[bytes, bytes] | None:
        """(head, rest) once the head is complete, else None (``data`` is kept)."""
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) <= MAX_HEAD_BYTES:
            self._head = head
            return None
        self._head = b""
        if end < 0:
            return head, b""
        return head[: end + 4], head[end + 4 :]


class LinkStalled(Exception):
    """A peer stopped reading: the bytes waiting for it passed the link's limit."""


class LinkClosed(Exception):
    """The socket is closed (or closing): nothing can be sent on it any more."""


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol plus a direct path for one route.

    Until ``attach`` the behaviour is uvicorn's, message for message. After it, text and
    binary messages are handed to the callback as ``bytes`` (undecoded: the JSON parser
    validates UTF-8) instead of the ASGI queue, reading is never paused per message, and
    ``send_texts`` writes frames without the ASGI ``send`` round trip. The handshake,
    ``websocket.accept``/``close``, pings and the disconnect event stay on the ASGI path.
    """

    _on_message: MessageHandler | None = None
    _stream: _HeadThenFrames | None = None
    _fragment_attr = "current_size"

    def data_received(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            stream = self._stream = _HeadThenFrames()
        splitter = stream.splitter
        if splitter is not None:
            splitter.feed(data)
            return
        parts = stream.split_head(data)
        if parts is None:
            return
        head, rest = parts
        super().data_received(head)
        self._fragment_attr = _fragment_attr(self.conn)
        stream.splitter = splitter = _Splitter(
            self._direct_message,
            super().data_received,
            self._direct_ready,
            masked=True,
            limit=_frame_limit(self.conn),
        )
        if not head.endswith(b"\r\n\r\n"):
            splitter.bypass = True  # no well-formed head: websockets has the whole stream
        if rest:
            splitter.feed(rest)

    def _direct_ready(self) -> bool:
        return (
            self._on_message is not None
            and not self.close_sent
            and self.conn.state is State.OPEN
            and getattr(self.conn, self._fragment_attr) is None  # not inside a fragmented message
        )

    def _direct_message(self, payload: bytes) -> None:
        handler = self._on_message
        assert handler is not None
        handler(payload)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # a refused handshake builds no scope
            scope["extensions"][EXTENSION] = {"protocol": self}

    def attach(self, on_message: MessageHandler) -> None:
        """Deliver messages to ``on_message`` from now on, starting with any already
        queued for the ASGI ``receive`` (in order); other ASGI events stay queued."""
        self._on_message = on_message
        keep = []
        while not self.queue.empty():
            message = self.queue.get_nowait()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                on_message(text.encode() if text is not None else message.get("bytes") or b"")
            else:
                keep.append(message)
        for message in keep:
            self.queue.put_nowait(message)
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def detach(self) -> None:
        self._on_message = None

    def send_receive_event_to_app(self) -> None:
        handler = self._on_message
        if handler is None or self.close_sent:
            super().send_receive_event_to_app()
            return
        # The message uvicorn assembled (fragmented ones; whole frames come through the
        # splitter): `frames` since uvicorn 0.4x, one `bytes` buffer before.
        frames: list[bytes] | None = getattr(self, "frames", None)
        if frames is None:
            handler(bytes(getattr(self, "bytes", b"")))
            return
        self.frames = []
        handler(frames[0] if len(frames) == 1 else b"".join(frames))

    def send_texts(self, texts: tuple[str, ...], max_buffer_bytes: int) -> None:
        """Send each of ``texts`` as a text message, all in one ``write``.

        Raises ``LinkClosed`` once the socket is closing and ``LinkStalled`` when more
        than ``max_buffer_bytes`` wait for the peer.
        """
        conn = self.conn
        if conn.state is not State.OPEN or self.close_sent:
            raise LinkClosed("carrier socket closed")
        transport = self.transport
        if transport.get_write_buffer_size() > max_buffer_bytes:
            raise LinkStalled(f"carrier is not reading ({max_buffer_bytes} bytes waiting)")
        out = conn.data_to_send()  # anything websockets queued goes first (normally none)
        for text in texts:
            payload = text.encode()
            out.append(_header(len(payload), 0x81, 0))
            out.append(payload)
        transport.write(b"".join(out))


class CarrierLink:
    """The carrier's media socket for the bridge: callback in, synchronous send out.

    ``max_queue`` bounds what may wait for the carrier (messages; ``MESSAGE_BYTES``
    each on the direct path, where it is the transport buffer).
    """

    def __init__(self, ws: WebSocket, max_queue: int) -> None:
        self.ws = ws
        ext = ws.scope.get("extensions", {}).get(EXTENSION)
        proto = ext.get("protocol") if isinstance(ext, dict) else None
        self.direct: DirectWebSocketProtocol | None = (
            proto if isinstance(proto, DirectWebSocketProtocol) else None
        )
        self.max_queue = max_queue
        self.max_buffer_bytes = max_queue * MESSAGE_BYTES
        self._out: deque[str] = deque()
        self._wake = asyncio.Event()

    async def serve(self, on_message: MessageHandler) -> None:
        """Feed every message to ``on_message`` until the carrier disconnects.

        On the direct path messages arrive by callback and this only waits for the
        disconnect; otherwise it reads them through ASGI ``receive`` and also runs the
        writer for ``send``.
        """
        if self.direct is not None:
            self.direct.attach(on_message)
            try:
                while (await self.ws.receive())["type"] != "websocket.disconnect":
                    pass  # only ASGI events that are not messages arrive here
            finally:
                self.direct.detach()
            return
        writer = asyncio.ensure_future(self._writer())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                on_message(text.encode() if text is not None else message.get("bytes") or b"")
        finally:
            writer.cancel()

    def send(self, *texts: str, control: bool = False) -> None:
        """Send ``texts`` now (direct path) or queue them for the writer, ``control``
        ones ahead of any queued audio. Raises ``LinkClosed`` / ``LinkStalled``."""
        if self.direct is not None:
            self.direct.send_texts(texts, self.max_buffer_bytes)
            return
        if self.ws.application_state is not WebSocketState.CONNECTED:
            raise LinkClosed("carrier socket closed")
        if len(self._out) + len(texts) > self.max_queue:
            raise LinkStalled(f"carrier is not reading ({self.max_queue} messages waiting)")
        if control:
            self._out.extendleft(reversed(texts))
        else:
            self._out.extend(texts)
        self._wake.set()

    async def _writer(self) -> None:
        out = self._out
        while True:
            await self._wake.wait()
            self._wake.clear()
            while out:
                if self.ws.application_state is not WebSocketState.CONNECTED:
                    out.clear()
                    break
                await self.ws.send_text(out.popleft())


def _drop(message: bytes) -> None:
    pass


class RealtimeConnection(ClientConnection):
    """A ``websockets`` client connection whose data messages go to a callback.

    Until ``attach`` messages are kept (in order, up to ``max_queue`` of them: the
    handshake and the first server events can arrive before the bridge is ready).
    Fragmented messages are reassembled within ``max_size``, which the protocol enforces.
    """

    _handler: MessageHandler | None = None
    _early: list[bytes] | None = None
    _fragments: list[bytes] | None = None
    _stream: _HeadThenFrames | None = None
    _fragment_attr = "current_size"
    _masks: bytes = b""
    _mask_at: int = MASK_POOL_BYTES
    max_buffer_bytes: int = 2000 * MESSAGE_BYTES

    def data_received(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            stream = self._stream = _HeadThenFrames()
        splitter = stream.splitter
        if splitter is not None:
            splitter.feed(data)
            return
        parts = stream.split_head(data)
        if parts is None:
            return
        head, rest = parts
        super().data_received(head)
        self._fragment_attr = _fragment_attr(self.protocol)
        stream.splitter = splitter = _Splitter(
            self._deliver,
            super().data_received,
            self._direct_ready,
            masked=False,
            limit=_frame_limit(self.protocol),
        )
        if self.protocol.state is not State.OPEN or not head.endswith(b"\r\n\r\n"):
            splitter.bypass = True  # a refused handshake: websockets reads the rest
        if rest:
            splitter.feed(rest)

    def _direct_ready(self) -> bool:
        protocol = self.protocol
        return protocol.state is State.OPEN and getattr(protocol, self._fragment_attr) is None

    def attach(self, on_message: MessageHandler, max_queue: int) -> None:
        """Deliver data messages to ``on_message`` (those received so far first)."""
        self.max_buffer_bytes = max_queue * MESSAGE_BYTES
        early, self._early = self._early, None
        self._handler = on_message
        for message in early or ():
            on_message(message)

    def detach(self) -> None:
        """Drop data messages from now on (the call is over)."""
        self._handler = _drop

    def process_event(self, event: Any) -> None:
        if self.response is None or not isinstance(event, Frame):
            super().process_event(event)  # the handshake response
            return
        opcode = event.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not event.fin:
                self._fragments = [bytes(event.data)]
                return
            self._deliver(bytes(event.data))
        elif opcode is Opcode.CONT:
            if self._fragments is None:
                return  # the protocol rejects a stray continuation before this
            self._fragments.append(bytes(event.data))
            if event.fin:
                parts, self._fragments = self._fragments, None
                self._deliver(b"".join(parts))
        else:
            super().process_event(event)  # pongs

    def _deliver(self, message: bytes) -> None:
        handler = self._handler
        if handler is not None:
            handler(message)
            return
        early = self._early
        if early is None:
            early = self._early = []
        if len(early) >= EARLY_MAX:
            self.transport.abort()  # a peer flooding us before the call is set up
            return
        early.append(message)

    def send_now(self, *texts: str) -> None:
        """Send each of ``texts`` as a text message, all in one ``write``, without waiting.

        Raises ``ConnectionClosedError`` when the connection is not open and
        ``LinkStalled`` when more than ``max_buffer_bytes`` wait for the peer.
        """
        protocol = self.protocol
        if protocol.state is not State.OPEN:
            raise (
                protocol.close_exc
                if protocol.state is State.CLOSED
                else ConnectionClosedError(None, None)
            )
        if self.transport.get_write_buffer_size() > self.max_buffer_bytes:
            raise LinkStalled(f"realtime peer is not reading ({self.max_buffer_bytes} bytes)")
        self.transport.write(b"".join(self._frames(protocol.data_to_send(), texts)))

    def _frames(self, out: list[bytes], texts: Iterable[str]) -> list[bytes]:
        """Append masked text frames for ``texts`` to ``out`` (RFC 6455 §5.3: a fresh
        random key per frame, drawn from a pool refilled by ``os.urandom``)."""
        masks, at = self._masks, self._mask_at
        for text in texts:
            payload = text.encode()
            if at >= MASK_POOL_BYTES:
                masks, at = os.urandom(MASK_POOL_BYTES), 0
            key = masks[at : at + 4]
            at += 4
            out.append(_header(len(payload), 0x81, 0x80))
            out.append(key)
            out.append(apply_mask(payload, key))
        self._masks, self._mask_at = masks, at
        return out
