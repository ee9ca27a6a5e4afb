"""The call's two sockets (app.call.links) over real sockets against websockets peers:
text, binary, fragmented and 64-bit-length messages, pings, the close handshake, messages
that arrive before the bridge attaches, a peer that stops reading, and protocol errors
(built with websockets' own frame serializer) that must close the socket, not the call
process."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from picows import WSUpgradeRequest, ws_create_server
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from app.call.links import MediaStreamLink, RealtimeConnection, connect_realtime, proxy_for
from app.errors import LinkClosed, LinkStalled, RealtimeClosed, RealtimeConnectFailed
from tests.helpers import wait_until


class _Listener:
    """A picows server whose every connection is a ``MediaStreamLink`` run by ``script``."""

    def __init__(self, max_queue: int = 100, max_message_bytes: int = 1 << 20) -> None:
        self.links: list[MediaStreamLink] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.max_queue = max_queue
        self.max_message_bytes = max_message_bytes
        self.script: Any = None
        self.server: asyncio.Server | None = None

    def factory(self, request: WSUpgradeRequest) -> MediaStreamLink:
        return MediaStreamLink(self.max_queue, self.max_message_bytes, self._open)

    def _open(self, link: MediaStreamLink) -> None:
        self.links.append(link)
        self.tasks.append(asyncio.create_task(self.script(link)))

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/twilio/media"


@pytest.fixture
async def listener() -> AsyncIterator[_Listener]:
    lst = _Listener()
    lst.server = await ws_create_server(lst.factory, "127.0.0.1", 0)
    yield lst
    lst.server.close()
    for t in lst.tasks:
        t.cancel()


async def test_media_stream_link_over_a_real_socket(listener: _Listener) -> None:
    got: list[bytes] = []
    done = asyncio.Event()

    async def script(link: MediaStreamLink) -> None:
        first = await link.receive()  # before serve: kept for receive()
        assert first is not None
        got.append(first)

        def on_message(data: bytes) -> None:
            got.append(data)
            link.send(f"echo {len(data)}", "second")

        await link.serve(on_message)
        assert not link.open
        with pytest.raises(LinkClosed):
            link.send("late")
        assert await link.receive() is None
        done.set()

    listener.script = script
    async with websockets.connect(listener.url, compression=None) as ws:
        await ws.send("hello")
        await ws.send("direct")
        assert [await ws.recv(), await ws.recv()] == ["echo 6", "second"]
        await ws.send(b"\x00\x01binary")
        await ws.recv(), await ws.recv()
        await ws.send(["frag", "mented"])  # a fragmented text message
        assert await ws.recv() == "echo 10"
        await ws.recv()
        await asyncio.wait_for(await ws.ping(), 5)  # pong from picows
        await ws.send("x" * 100_000)  # 64-bit length
        assert await ws.recv() == "echo 100000"
        await ws.recv()
    assert ws.close_code == 1000  # the close handshake completed
    await asyncio.wait_for(done.wait(), 5)
    assert got == [b"hello", b"direct", b"\x00\x01binary", b"fragmented", b"x" * 100_000]


async def test_media_stream_link_closes_with_its_code(listener: _Listener) -> None:
    async def script(link: MediaStreamLink) -> None:
        await link.receive()
        await link.close(1008, "bad or replayed stream token")

    listener.script = script
    async with websockets.connect(listener.url, compression=None) as ws:
        await ws.send("start")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1008
    assert ws.close_reason == "bad or replayed stream token"


async def test_a_peer_that_stops_reading_stalls_the_link() -> None:
    lst = _Listener(max_queue=10)  # 4000 bytes may wait for the carrier
    stalled = asyncio.Event()

    async def script(link: MediaStreamLink) -> None:
        await link.receive()
        with pytest.raises(LinkStalled):
            for _ in range(100_000):  # ~40 MB: far past the kernel's socket buffers
                link.send("y" * 400)
                await asyncio.sleep(0)
        stalled.set()
        link.abort()

    lst.script = script
    lst.server = await ws_create_server(lst.factory, "127.0.0.1", 0)
    port = lst.server.sockets[0].getsockname()[1]
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        raw.sendall(_upgrade(f"127.0.0.1:{port}") + _frame(Opcode.TEXT, b"start"))
        await asyncio.wait_for(stalled.wait(), 20)  # never reading from `raw`
    finally:
        raw.close()
        lst.server.close()


def _upgrade(host: str) -> bytes:
    return (
        f"GET /twilio/media HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """A client frame, masked, serialized by websockets (RFC 6455 §5.2)."""
    return Frame(opcode, data, fin=fin).serialize(mask=True)


async def _raw_close_code(url_port: int, frames: bytes) -> int:
    """Send ``frames`` after the upgrade; the close code the server answers with."""
    reader, writer = await asyncio.open_connection("127.0.0.1", url_port)
    writer.write(_upgrade(f"127.0.0.1:{url_port}") + frames)
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in head
    data = await asyncio.wait_for(reader.read(), 5)  # until the server drops us
    writer.close()
    assert data[0] == 0x88, data  # a close frame, unmasked, code first
    return int.from_bytes(data[2:4], "big")


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (_frame(Opcode.CONT, b"stray"), 1002),  # a continuation with no message
        (_frame(Opcode.TEXT, b"a", fin=False) + _frame(Opcode.TEXT, b"b"), 1002),
        (_frame(Opcode.TEXT, b"a" * 600, fin=False) + _frame(Opcode.CONT, b"b" * 600), 1009),
    ],
    ids=["stray-continuation", "message-inside-fragments", "fragments-too-big"],
)
async def test_protocol_errors_close_the_socket(frames: bytes, code: int) -> None:
    lst = _Listener(max_message_bytes=1000)
    got: list[bytes] = []

    async def script(link: MediaStreamLink) -> None:
        await link.serve(got.append)

    lst.script = script
    lst.server = await ws_create_server(lst.factory, "127.0.0.1", 0)
    try:
        port = lst.server.sockets[0].getsockname()[1]
        assert await _raw_close_code(port, frames) == code
    finally:
        lst.server.close()
    assert got == []


async def test_a_flood_before_the_call_is_set_up_is_cut_off(listener: _Listener) -> None:
    async def script(link: MediaStreamLink) -> None:
        await asyncio.sleep(3600)  # never reads

    listener.script = script
    async with websockets.connect(listener.url, compression=None) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            for i in range(10_000):
                await ws.send(f"m{i}")
                await asyncio.sleep(0)
            await asyncio.wait_for(ws.recv(), 5)


async def test_realtime_connection_over_a_real_socket() -> None:
    server_got: list[str | bytes] = []
    pinged = asyncio.Event()
    headers: list[str | None] = []

    async def handler(ws: ServerConnection) -> None:
        headers.append(ws.request.headers.get("Authorization") if ws.request else None)
        await ws.send("first")  # may arrive with the handshake, before attach
        await ws.send(["frag", "mented"])
        await (await ws.ping())  # answered: both messages are in, before attach
        pinged.set()
        async for message in ws:
            server_got.append(message)
            if message == "bye":
                await ws.send("last")

    async with serve(handler, "127.0.0.1", 0, compression=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        rt = await connect_realtime(
            f"ws://127.0.0.1:{port}/v1/realtime?model=x",
            {"Authorization": "Bearer k"},
            open_timeout_s=5,
            max_message_bytes=1 << 20,
        )
        assert isinstance(rt, RealtimeConnection)
        await asyncio.wait_for(pinged.wait(), 30)
        got: list[bytes] = []
        rt.attach(got.append, 100)
        rt.send_now(*(f"m{i}" for i in range(3000)))
        rt.send_now("bye")
        await wait_until(lambda: got[-1:] == [b"last"], what="the server's last message")
        await rt.close()
    assert headers == ["Bearer k"]
    assert got == [b"first", b"fragmented", b"last"]
    assert server_got == [f"m{i}" for i in range(3000)] + ["bye"]
    with pytest.raises(RealtimeClosed):
        rt.send_now("after close")


async def test_realtime_close_by_the_server_is_seen_with_its_code() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(4001, "session expired")

    async with serve(handler, "127.0.0.1", 0, compression=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        rt = await connect_realtime(
            f"ws://127.0.0.1:{port}/", {}, open_timeout_s=5, max_message_bytes=1 << 20
        )
        await asyncio.wait_for(rt.wait_closed(), 5)
    assert (rt.close_code, rt.close_reason) == (4001, "session expired")
    with pytest.raises(RealtimeClosed, match="4001"):
        rt.send_now("x")


async def test_realtime_refused_upgrade_and_closed_port() -> None:
    async def handler(ws: ServerConnection) -> None:
        pass

    def refuse(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(401, "no key\n")

    async with serve(handler, "127.0.0.1", 0, process_request=refuse) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        with pytest.raises(RealtimeConnectFailed):
            await connect_realtime(
                f"ws://127.0.0.1:{port}/", {}, open_timeout_s=5, max_message_bytes=1024
            )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(OSError):
        await connect_realtime(
            f"ws://127.0.0.1:{closed}/", {}, open_timeout_s=5, max_message_bytes=1024
        )


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert proxy_for("wss://api.openai.com/v1/realtime") is None
    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    assert proxy_for("wss://api.openai.com/v1/realtime") == "http://proxy.internal:3128"
    assert proxy_for("ws://127.0.0.1:8765/v1/realtime") is None
    assert os.environ["no_proxy"]  # (monkeypatch restores the environment)
