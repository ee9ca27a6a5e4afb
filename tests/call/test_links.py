"""The direct WebSocket paths of app.call.links: the frame splitter on any split of the
byte stream, and both links over real sockets against websockets peers (text, binary,
fragmented messages, pings, close), so the fast framing never desynchronises from the
websockets protocol that still owns each connection."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.speedups import apply_mask

from app.call.links import (
    EXTENSION,
    DirectWebSocketProtocol,
    LinkClosed,
    RealtimeConnection,
    _header,
    _Splitter,
)


def _masked(payload: bytes, first: int = 0x81) -> bytes:
    key = os.urandom(4)
    return _header(len(payload), first, 0x80) + key + apply_mask(payload, key)


def _plain(payload: bytes, first: int = 0x81) -> bytes:
    return _header(len(payload), first, 0) + payload


@pytest.mark.parametrize("masked", [True, False], ids=["server-side", "client-side"])
def test_splitter_on_every_split_of_the_stream(masked: bool) -> None:
    frame = _masked if masked else _plain
    big = os.urandom(70_000)  # 64-bit length
    frames = [
        (frame(b'{"a":1}'), "fast", b'{"a":1}'),
        (frame(b"x" * 300, 0x82), "fast", b"x" * 300),  # binary, 16-bit length
        (frame(b"ping", 0x89), "slow", None),  # control frame
        (frame(b"frag", 0x01), "slow", None),  # first fragment of a message
        (frame(b"ment", 0x80), "slow", None),  # its final continuation
        (frame(big, 0x81), "fast", big),
        (frame(b"", 0x81), "fast", b""),
        (frame(b"\x03\xe8", 0x88), "slow", None),  # close
    ]
    stream = b"".join(f for f, _, _ in frames)
    want_fast = [p for _, kind, p in frames if kind == "fast"]
    want_slow = [f for f, kind, _ in frames if kind == "slow"]
    for step in (1, 2, 3, 5, 7, 64, 1000, len(stream)):
        fast: list[bytes] = []
        slow: list[bytes] = []
        s = _Splitter(fast.append, slow.append, lambda: True, masked=masked, limit=1 << 20)
        for i in range(0, len(stream), step):
            s.feed(stream[i : i + step])
        assert fast == want_fast and slow == want_slow, step


def test_splitter_defers_to_websockets_when_not_ready_or_wrongly_masked() -> None:
    fast: list[bytes] = []
    slow: list[bytes] = []
    ready = [False]
    s = _Splitter(fast.append, slow.append, lambda: ready[0], masked=True, limit=1 << 20)
    s.feed(_masked(b"before attach"))
    ready[0] = True
    unmasked = _plain(b"a client must mask")
    s.feed(unmasked + _masked(b"after"))
    assert fast == [b"after"]
    assert len(slow) == 2 and slow[1] == unmasked


def test_splitter_hands_an_oversized_frame_and_the_rest_to_websockets() -> None:
    fast: list[bytes] = []
    slow: list[bytes] = []
    s = _Splitter(fast.append, slow.append, lambda: True, masked=True, limit=1000)
    big = _masked(b"y" * 2000)
    later = _masked(b"later")
    s.feed(_masked(b"ok") + big[:50])
    s.feed(big[50:] + later)
    assert fast == [b"ok"]
    assert b"".join(slow) == big + later  # all of it, from the oversized frame on
    assert s.bypass


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, ws=DirectWebSocketProtocol, log_config=None, lifespan="off")

    class _Server(uvicorn.Server):
        def install_signal_handlers(self) -> None:  # the test process owns signals
            pass

    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


async def test_direct_protocol_over_a_real_socket() -> None:
    got: list[bytes] = []
    attached = asyncio.Event()
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        first = await receive()  # before attach: the ordinary ASGI path
        got.append(first["text"].encode())
        proto: DirectWebSocketProtocol = scope["extensions"][EXTENSION]["protocol"]

        def on_message(data: bytes) -> None:
            got.append(bytes(data))
            proto.send_texts((f"echo {len(data)}", "second"), 1 << 20)

        proto.attach(on_message)
        attached.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass
        proto.detach()
        with pytest.raises(LinkClosed):
            proto.send_texts(("late",), 1 << 20)
        done.set()

    server, task, port = await _serve(app)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            await ws.send("hello")
            await attached.wait()
            await ws.send("direct")
            assert [await ws.recv(), await ws.recv()] == ["echo 6", "second"]
            await ws.send(b"\x00\x01binary")
            await ws.recv(), await ws.recv()
            await ws.send(["frag", "mented"])  # a fragmented text message
            assert await ws.recv() == "echo 10"
            await ws.recv()
            await asyncio.wait_for(await ws.ping(), 5)  # pong through websockets
            await ws.send("x" * 100_000)  # 64-bit length
            assert await ws.recv() == "echo 100000"
            await ws.recv()
        await asyncio.wait_for(done.wait(), 5)
    finally:
        server.should_exit = True
        await task
    assert got == [b"hello", b"direct", b"\x00\x01binary", b"fragmented", b"x" * 100_000]


async def test_realtime_connection_over_a_real_socket() -> None:
    server_got: list[str | bytes] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send("first")  # may arrive with the handshake, before attach
        await ws.send(["frag", "mented"])
        await ws.ping()
        async for message in ws:
            server_got.append(message)
            if message == "bye":
                await ws.send("last")

    async with serve(handler, "127.0.0.1", 0, compression=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        rt = await websockets.connect(
            f"ws://127.0.0.1:{port}/", compression=None, create_connection=RealtimeConnection
        )
        assert isinstance(rt, RealtimeConnection)
        await asyncio.sleep(0.1)
        got: list[bytes] = []
        rt.attach(got.append, 100)
        rt.send_now(*(f"m{i}" for i in range(3000)))  # past the mask pool: refilled
        rt.send_now("bye")
        for _ in range(100):
            if got[-1:] == [b"last"]:
                break
            await asyncio.sleep(0.02)
        await rt.close()
    assert got == [b"first", b"fragmented", b"last"]
    assert server_got == [f"m{i}" for i in range(3000)] + ["bye"]
    with pytest.raises(websockets.ConnectionClosed):
        rt.send_now("after close")
