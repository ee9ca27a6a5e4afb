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

A synchronous send never waits: when a peer stops reading, its bytes pile up in the
transport's buffer, and past ``max_buffer_bytes`` the send raises ``LinkStalled`` so
the bridge ends the call instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Frame, Opcode
from websockets.protocol import State

#: ASGI scope extension under which ``DirectWebSocketProtocol`` offers itself.
EXTENSION = "switchboard.direct_websocket"
#: Rough size of one media-path message (bytes): buffer limits are set in messages.
MESSAGE_BYTES = 400
#: Realtime messages kept while the bridge is not attached yet (connection set-up).
EARLY_MAX = 256

MessageHandler = Callable[[bytes], None]


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
        frames = self.frames
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
        for text in texts:
            conn.send_text(text.encode())
        transport.write(b"".join(conn.data_to_send()))


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
    max_buffer_bytes: int = 2000 * MESSAGE_BYTES

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
                self.close_exc
                if protocol.state is State.CLOSED
                else ConnectionClosedError(None, None)
            )
        if self.transport.get_write_buffer_size() > self.max_buffer_bytes:
            raise LinkStalled(f"realtime peer is not reading ({self.max_buffer_bytes} bytes)")
        for text in texts:
            protocol.send_text(text.encode())
        self.transport.write(b"".join(protocol.data_to_send()))
