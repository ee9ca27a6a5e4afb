"""Hand-made carrier requests for the security tests: signed webhooks and a raw media
stream whose ``start`` message says whatever the test wants."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from switchboard_sim.calls import new_call_sid
from tests.e2e.conftest import ACCOUNT_SID, Stack

CALLER = "+15555550123"
SUPPORT = "+15550100000"


def voice_params(call_sid: str, **over: str) -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "From": CALLER,
        "To": SUPPORT,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    params.update(over)
    return params


async def post_signed(stack: Stack, path: str, params: dict[str, str]) -> httpx.Response:
    """POST ``params`` to ``path`` signed as Twilio would (over the public URL)."""
    url = stack.settings.public_url(path)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        return await http.post(
            path, data=params, headers={"X-Twilio-Signature": stack.sim.sign(url, params)}
        )


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    """``(url, parameters)`` of the TwiML's ``<Connect><Stream>``."""
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    assert stream is not None, twiml
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("./Parameter")}
    return stream.get("url", ""), params


async def answered(stack: Stack, call_sid: str | None = None) -> tuple[str, str, dict[str, str]]:
    """A new call's voice webhook: ``(call_sid, stream url, stream parameters)``."""
    sid = call_sid or new_call_sid()
    r = await post_signed(stack, "/twilio/voice", voice_params(sid))
    assert r.status_code == 200, r.text
    url, params = stream_of(r.text)
    return sid, url, params


async def open_stream(
    stack: Stack,
    url: str,
    call_sid: str,
    custom_parameters: dict[str, Any],
    *,
    signed: bool = True,
) -> ClientConnection:
    """Connect to the media stream (upgrade signed over ``url``) and send ``connected``
    and a ``start`` carrying ``custom_parameters``."""
    headers = {"X-Twilio-Signature": stack.sim.sign(url, {})} if signed else {}
    ws = await connect(url, additional_headers=headers, open_timeout=5)
    stream_sid = "MZ" + call_sid[2:]
    await ws.send(orjson.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "accountSid": ACCOUNT_SID,
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": custom_parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
    await ws.send(orjson.dumps(start).decode())
    return ws


async def stop_stream(ws: ClientConnection, call_sid: str) -> None:
    stream_sid = "MZ" + call_sid[2:]
    stop = {"event": "stop", "sequenceNumber": "2", "streamSid": stream_sid}
    stop["stop"] = {"accountSid": ACCOUNT_SID, "callSid": call_sid}
    await ws.send(orjson.dumps(stop).decode())
    await ws.close()


@contextlib.asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn (``options`` as ``switchboard serve`` passes them) on a free
    loopback port; yields its base URL."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **options)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
