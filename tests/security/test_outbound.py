"""Outbound HTTP has timeouts: a carrier REST API that accepts and never answers does not
keep a worker thread (and its socket) forever."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.carrier.rest import TwilioCalls
from app.errors import CarrierRestError


async def test_rest_client_gives_up_and_closes_its_socket() -> None:
    closed = asyncio.Event()
    opened: list[float] = []

    async def blackhole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(time.monotonic())
        while await reader.read(65536):
            pass  # never answer; return once the client closes its end
        closed.set()
        writer.close()

    server = await asyncio.start_server(blackhole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    calls = TwilioCalls("AC" + "1" * 32, "t" * 32, f"http://127.0.0.1:{port}", timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(CarrierRestError):
        await calls.hangup("CA" + "2" * 32)
    assert time.monotonic() - t0 < 3
    # The HTTP request itself timed out (not only the asyncio deadline around it): the
    # client closed the connection instead of waiting on it in its thread forever.
    await asyncio.wait_for(closed.wait(), 5)
    assert opened
    server.close()
    await server.wait_closed()
