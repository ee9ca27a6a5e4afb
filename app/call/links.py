"""The call's two sockets: a callback per message in, a synchronous send out.

A call moves 50 inbound frames a second and as many outbound chunks and mark echoes, so
both sockets hand each message from the WebSocket parser straight to the bridge's
handler, and each send is written at once: no task, queue or future per message.

- ``CarrierLink``: the Twilio Media Streams socket as the bridge sees it: ``receive()``
  until the call is bridged, then ``serve(on_message)``, ``send(*texts)``, ``close()``.

  - ``MediaStreamLink``: a socket of the media-plane listener
    (``app.call.media_server``, what ``switchboard serve`` runs), a picows listener.
  - ``AsgiCarrierLink``: the same over an ASGI WebSocket (the HTTP app's
    ``/twilio/media`` route, for other ASGI servers): a reader loop, and a writer task
    with a bounded queue where control messages jump ahead of audio.

- ``RealtimeConnection``: the Realtime socket, a picows client (``connect_realtime``:
  TLS for ``wss://``, the dialect's headers, a proxy from the environment as
  ``urllib.request.getproxies`` finds it).

Framing, masking, the HTTP upgrade, pongs and close frames are picows' (RFC 6455, through
its public ``WSListener``/``WSTransport`` API, one C-level parse per frame); this module
only reassembles fragmented messages (§5.4) and completes the closing handshake (§5.5.1).
Messages are handed over as ``bytes``, undecoded: the JSON parser validates UTF-8.

A synchronous send never waits: when a peer stops reading, its bytes pile up in the
transport's buffer, and past ``max_buffer_bytes`` the send raises ``LinkStalled`` so the
bridge ends the call instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.request
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSListener,
    WSMsgType,
    WSProtocolError,
    WSTransport,
    WSUpgradeResponse,
    ws_connect,
)
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

# Defined in app/errors.py; named here too (``X as X``: re-exported) for older imports.
from app.errors import LinkClosed as LinkClosed
from app.errors import LinkStalled as LinkStalled
from app.errors import RealtimeClosed as RealtimeClosed
from app.errors import RealtimeConnectFailed as RealtimeConnectFailed
from app.realtime.dialect import Endpoint
from app.settings import Settings

#: Rough size of one media-path message (bytes): buffer limits are set in messages.
MESSAGE_BYTES = 400
#: Messages kept while the bridge is not attached yet (connection set-up); a peer sending
#: more before that is cut off.
EARLY_MAX = 256
#: How long ``close()`` waits for the peer's close frame before dropping the TCP connection,
#: unless the link is given its own (``Settings.ws_close_timeout_ms``).
CLOSE_TIMEOUT_S = 2.0
#: First size of a socket's read buffer in picows (bytes; it doubles when a frame needs
#: more). A media frame is ~250 bytes: picows' 16 KiB default would be most of a call's RSS.
READ_BUFFER_BYTES = 4096

MessageHandler = Callable[[bytes], None]

#: picows' own log (a line per connection at INFO): only its warnings and errors.
WIRE_LOG = logging.getLogger("switchboard.wire")
WIRE_LOG.setLevel(logging.WARNING)

_TEXT, _BINARY, _CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_CLOSE, _PING = WSMsgType.CLOSE, WSMsgType.PING


def _drop(message: bytes) -> None:
    pass


class MessageListener(WSListener):
    """picows frames → whole messages, handed to ``self.deliver(payload)``.

    A final, unfragmented text or binary frame (the media path) is one attribute test and
    one call. Fragments are joined within ``max_message_bytes`` (else close 1009); a peer's
    close frame is answered with its code and the connection dropped; pings are answered
    by picows. Protocol errors close the socket with 1002 (``WSProtocolError``).
    """

    #: Receives each whole message (set by the subclass; swapped as the call moves on).
    deliver: MessageHandler

    def __init__(self, max_message_bytes: int, close_timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.max_message_bytes = max_message_bytes
        self.close_timeout_s = close_timeout_s
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self._write_buffer_size: Callable[[], int] = lambda: 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._write_buffer_size = transport.underlying_transport.get_write_buffer_size

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if frame.fin and self._fragments is None and (kind is _TEXT or kind is _BINARY):
            self.deliver(frame.get_payload_as_bytes())
        else:
            self._other_frame(transport, frame, kind)

    def _other_frame(self, transport: WSTransport, frame: WSFrame, kind: WSMsgType) -> None:
        if kind is _CLOSE:
            if not transport.is_close_frame_sent:
                code = frame.get_close_code()
                transport.send_close(WSCloseCode.OK if code is WSCloseCode.NO_INFO else code)
            transport.disconnect()
            return
        if kind is _PING:  # only when picows' auto-pong is off
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if kind is _TEXT or kind is _BINARY:
            if self._fragments is not None:
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one"
                )
            self._fragments = []
            self._fragments_size = 0
        elif kind is _CONT:
            if self._fragments is None:
                raise WSProtocolError(WSCloseCode.PROTOCOL_ERROR, "continuation without a message")
        else:
            return  # a pong
        size = self._fragments_size + frame.payload_size
        if size > self.max_message_bytes:
            raise WSProtocolError(
                WSCloseCode.MESSAGE_TOO_BIG, f"message over {self.max_message_bytes} bytes"
            )
        self._fragments.append(frame.get_payload_as_bytes())
        self._fragments_size = size
        if frame.fin:
            parts, self._fragments = self._fragments, None
            self.deliver(b"".join(parts))

    def _closing(self) -> bool:
        transport = self.transport
        return transport is None or transport.is_close_frame_sent or transport.is_disconnected

    async def _close(self, code: int, reason: str) -> None:
        """Send a close frame (once) and wait, within ``close_timeout_s``, for the peer's;
        then the TCP connection is dropped."""
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode()[:123])
        try:
            async with asyncio.timeout(self.close_timeout_s):
                await transport.wait_disconnected()
        except Exception:  # timed out, or the reason it failed (picows logged that)
            pass
        finally:  # also when the caller's own deadline cancels the wait
            if not transport.is_disconnected:
                transport.disconnect(graceful=False)


# --- the carrier socket ----------------------------------------------------------------------


class CarrierLink:
    """The carrier's media socket for the bridge (the interface both links provide).

    ``max_queue`` bounds what may wait for the carrier (messages; ``MESSAGE_BYTES``
    each where it is a transport buffer).
    """

    max_queue: int

    @property
    def open(self) -> bool:
        """Whether messages can still be sent."""
        raise NotImplementedError

    async def receive(self) -> bytes | None:
        """The next message before ``serve`` (the ``connected``/``start`` messages), or
        None once the socket is closed."""
        raise NotImplementedError

    async def serve(self, on_message: MessageHandler) -> None:
        """Feed every message to ``on_message`` until the carrier disconnects."""
        raise NotImplementedError

    def send(self, *texts: str, control: bool = False) -> None:
        """Send ``texts`` now, in order (``control``: ahead of any audio still queued in
        this process). Raises ``LinkClosed`` once the socket is closing and
        ``LinkStalled`` when more than the link's limit waits for the carrier."""
        raise NotImplementedError

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (RFC 6455 §7.4) and ``reason`` (≤ 123 bytes)."""
        raise NotImplementedError


class MediaStreamLink(MessageListener, CarrierLink):
    """A carrier socket of the media-plane listener (picows server side).

    ``on_open(link)`` runs once the upgrade completed (the listener starts the call's
    bridge there). Until ``serve`` messages are kept for ``receive`` (at most
    ``EARLY_MAX``: a peer sending more before its call is set up is cut off).
    """

    def __init__(
        self,
        max_queue: int,
        max_message_bytes: int,
        on_open: Callable[[MediaStreamLink], None],
        close_timeout_s: float = CLOSE_TIMEOUT_S,
    ) -> None:
        super().__init__(max_message_bytes, close_timeout_s)
        self.max_queue = max_queue
        self.max_buffer_bytes = max_queue * MESSAGE_BYTES
        self._on_open = on_open
        self._early: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._gone = False
        self.deliver = self._keep

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self._on_open(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._gone = True
        self._wake()

    def _keep(self, message: bytes) -> None:
        if len(self._early) >= EARLY_MAX:
            if self.transport is not None:
                self.transport.disconnect(graceful=False)
            return
        self._early.append(message)
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def open(self) -> bool:
        return not self._closing()

    async def receive(self) -> bytes | None:
        while not self._early:
            if self._gone:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._early.popleft()

    async def serve(self, on_message: MessageHandler) -> None:
        early, self._early = self._early, deque()
        self.deliver = on_message
        try:
            for message in early:
                on_message(message)
            if self.transport is not None and not self._gone:
                await self.transport.wait_disconnected()
        finally:
            self.deliver = _drop

    def send(self, *texts: str, control: bool = False) -> None:
        transport = self.transport
        if transport is None or transport.is_close_frame_sent or transport.is_disconnected:
            raise LinkClosed("carrier socket closed")
        if self._write_buffer_size() > self.max_buffer_bytes:
            raise LinkStalled(f"carrier is not reading ({self.max_buffer_bytes} bytes waiting)")
        send = transport.send
        for text in texts:
            send(_TEXT, text)

    async def close(self, code: int, reason: str) -> None:
        await self._close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection now (shutdown, after the drain)."""
        if self.transport is not None:
            self.transport.disconnect(graceful=False)


class AsgiCarrierLink(CarrierLink):
    """A carrier socket behind any ASGI server: messages through ``receive``, sends
    through a writer task with a queue of at most ``max_queue`` messages."""

    def __init__(self, ws: WebSocket, max_queue: int) -> None:
        self.ws = ws
        self.max_queue = max_queue
        self._out: deque[str] = deque()
        self._wake = asyncio.Event()

    @property
    def open(self) -> bool:
        return self.ws.application_state is WebSocketState.CONNECTED

    async def receive(self) -> bytes | None:
        try:
            message = await self.ws.receive()
        except WebSocketDisconnect:
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text.encode() if text is not None else bytes(message.get("bytes") or b"")

    async def serve(self, on_message: MessageHandler) -> None:
        writer = asyncio.ensure_future(self._writer())
        try:
            while (message := await self.receive()) is not None:
                on_message(message)
        finally:
            writer.cancel()

    def send(self, *texts: str, control: bool = False) -> None:
        if not self.open:
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
                if not self.open:
                    out.clear()
                    break
                await self.ws.send_text(out.popleft())

    async def close(self, code: int, reason: str) -> None:
        if self.open:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason[:120])


# --- the Realtime socket ---------------------------------------------------------------------


class RealtimeConnection(MessageListener):
    """The Realtime socket (picows client side), made by ``connect_realtime``.

    Until ``attach`` messages are kept (in order, up to ``EARLY_MAX``: the handshake and
    the first server events can arrive before the bridge is ready).
    """

    def __init__(self, max_message_bytes: int, close_timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        super().__init__(max_message_bytes, close_timeout_s)
        self._early: list[bytes] = []
        self.deliver = self._keep
        self.max_buffer_bytes = 2000 * MESSAGE_BYTES
        self.response: WSUpgradeResponse | None = None
        #: Pongs received (the liveness check compares it between pings).
        self.pongs = 0

    def _other_frame(self, transport: WSTransport, frame: WSFrame, kind: WSMsgType) -> None:
        if kind is WSMsgType.PONG:
            self.pongs += 1
            return
        super()._other_frame(transport, frame, kind)

    def ping(self) -> None:
        """Send a WebSocket ping (RFC 6455 §5.5.2); the peer's pong counts in ``pongs``."""
        if not self._closing():
            assert self.transport is not None
            self.transport.send_ping()

    def abort(self) -> None:
        """Drop the connection now, without a close handshake (a peer that went silent)."""
        self.deliver = _drop
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(graceful=False)

    def _keep(self, message: bytes) -> None:
        if len(self._early) >= EARLY_MAX:
            if self.transport is not None:  # a peer flooding us before the call is set up
                self.transport.disconnect(graceful=False)
            return
        self._early.append(message)

    def attach(self, on_message: MessageHandler, max_queue: int) -> None:
        """Deliver messages to ``on_message`` (those received so far first); past
        ``max_queue`` messages (``MESSAGE_BYTES`` each) waiting, sends raise ``LinkStalled``."""
        self.max_buffer_bytes = max_queue * MESSAGE_BYTES
        early, self._early = self._early, []
        self.deliver = on_message
        for message in early:
            on_message(message)

    def detach(self) -> None:
        """Drop messages from now on (the call is over)."""
        self.deliver = _drop

    def send_now(self, *texts: str) -> None:
        """Send each of ``texts`` as a text message, in order, without waiting.

        Raises ``RealtimeClosed`` when the connection is closing or closed and
        ``LinkStalled`` when more than ``max_buffer_bytes`` wait for the peer.
        """
        transport = self.transport
        if transport is None or transport.is_close_frame_sent or transport.is_disconnected:
            raise RealtimeClosed(f"realtime socket closed: {self.close_code} {self.close_reason}")
        if self._write_buffer_size() > self.max_buffer_bytes:
            raise LinkStalled(f"realtime peer is not reading ({self.max_buffer_bytes} bytes)")
        send = transport.send
        for text in texts:
            send(_TEXT, text)

    async def send(self, message: str) -> None:
        """``send_now(message)`` for callers that await (as on a ``websockets`` connection)."""
        self.send_now(message)

    @property
    def close_code(self) -> int | None:
        """The close code the peer sent (RFC 6455 §7.4), None if it sent none."""
        handshake = self.transport.close_handshake if self.transport is not None else None
        received = handshake.recv if handshake is not None else None
        return int(received.code.value) if received is not None else None

    @property
    def close_reason(self) -> str:
        handshake = self.transport.close_handshake if self.transport is not None else None
        received = handshake.recv if handshake is not None else None
        return received.reason if received is not None else ""

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, whoever closed it."""
        if self.transport is not None:
            with contextlib.suppress(Exception):  # a local failure: picows logged it
                await self.transport.wait_disconnected()

    async def close(self) -> None:
        """Close normally (1000), waiting at most ``close_timeout_s`` for the peer."""
        await self._close(1000, "")


def proxy_for(url: str) -> str | None:
    """The proxy for ``url`` from the environment (``https_proxy`` for ``wss://``,
    ``http_proxy`` for ``ws://``, ``all_proxy``; none when ``no_proxy`` matches), as
    ``websockets`` picks it by default. picows speaks HTTP(S) and SOCKS proxies."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxies.get("https" if parts.scheme == "wss" else "http") or proxies.get("all")


async def connect_realtime(
    url: str,
    headers: dict[str, str],
    *,
    open_timeout_s: float,
    max_message_bytes: int,
    close_timeout_s: float = CLOSE_TIMEOUT_S,
) -> RealtimeConnection:
    """Open the Realtime socket at ``url`` (``ws://`` or ``wss://``; TLS with the default
    context) with ``headers`` on the upgrade request, within ``open_timeout_s``; its
    ``close`` waits ``close_timeout_s`` for the peer's close frame.

    Raises ``OSError`` (connect), ``TimeoutError`` or ``RealtimeConnectFailed`` (the
    upgrade was refused or broke the protocol).
    """
    conn = RealtimeConnection(max_message_bytes, close_timeout_s)

    def listener(request: Any, response: WSUpgradeResponse) -> RealtimeConnection:
        conn.response = response
        return conn

    try:
        async with asyncio.timeout(open_timeout_s):
            await ws_connect(
                listener,
                url,
                extra_headers=headers,
                websocket_handshake_timeout=open_timeout_s,
                max_frame_size=max_message_bytes,
                proxy=proxy_for(url),
                logger_name=WIRE_LOG,
                max_redirects=0,
                read_buffer_init_size=READ_BUFFER_BYTES,
            )
    except (WSError, ValueError) as exc:
        raise RealtimeConnectFailed(str(exc) or type(exc).__name__) from None
    return conn


__all__ = [
    "EARLY_MAX",
    "MESSAGE_BYTES",
    "AsgiCarrierLink",
    "CarrierLink",
    "LinkClosed",
    "LinkStalled",
    "MediaStreamLink",
    "MessageListener",
    "RealtimeClosed",
    "RealtimeConnectFailed",
    "RealtimeConnection",
    "connect_realtime",
    "proxy_for",
]


#: What opening a Realtime socket raises when it cannot (``open_realtime``).
REALTIME_CONNECT_ERRORS = (OSError, TimeoutError, RealtimeConnectFailed)


async def open_realtime(endpoint: Endpoint, settings: Settings) -> RealtimeConnection:
    """``connect_realtime`` to ``endpoint`` within ``realtime.connect_timeout_ms``, with
    ``realtime.max_message_bytes`` and ``ws_close_timeout_ms``. Raises one of
    ``REALTIME_CONNECT_ERRORS``: ``OSError`` (connect), ``TimeoutError`` or
    ``RealtimeConnectFailed`` (the upgrade was refused)."""
    return await connect_realtime(
        endpoint.url,
        dict(endpoint.headers),
        open_timeout_s=settings.realtime.connect_timeout_ms / 1000,
        max_message_bytes=settings.realtime.max_message_bytes,
        close_timeout_s=settings.ws_close_timeout_ms / 1000,
    )
