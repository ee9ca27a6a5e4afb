"""A minimal Twilio-facing server for testing the carrier simulator.

It is what the real server does in miniature: validates ``X-Twilio-Signature`` on
the webhook, the status callback and the WebSocket handshake with twilio's
``RequestValidator``, answers TwiML pointing at its own ``/twilio/media`` with a
one-time ``token`` parameter, checks the token in ``start``, and then runs a
per-test ``behaviour`` coroutine that talks Media Streams to the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request, Response, WebSocket
from starlette.websockets import WebSocketDisconnect
from twilio.request_validator import RequestValidator

from switchboard_sim.serve import LoopbackServer


@dataclass
class Received:
    """One message from the simulator with its arrival time (monotonic s)."""

    at: float
    msg: dict[str, Any]


@dataclass
class PeerCall:
    ws: WebSocket
    ws_signature_ok: bool
    start: dict[str, Any] | None = None
    token_ok: bool = False
    received: list[Received] = field(default_factory=list)
    sent_marks: dict[str, float] = field(default_factory=dict)
    closed_by_peer: bool = False
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stream_sid(self) -> str:
        assert self.start is not None
        return str(self.start["streamSid"])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r.msg for r in self.received if r.msg.get("event") == name]

    def inbound_frames(self) -> list[bytes]:
        return [base64.b64decode(m["media"]["payload"]) for m in self.events("media")]

    def mark_echo_time(self, name: str) -> float | None:
        for r in self.received:
            if r.msg.get("event") == "mark" and r.msg["mark"]["name"] == name:
                return r.at
        return None

    async def send_media(self, ulaw: bytes) -> None:
        await self.ws.send_text(
            orjson.dumps(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {"payload": base64.b64encode(ulaw).decode()},
                }
            ).decode()
        )

    async def send_mark(self, name: str) -> None:
        self.sent_marks[name] = time.monotonic()
        await self.ws.send_text(
            orjson.dumps(
                {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
            ).decode()
        )

    async def send_clear(self) -> None:
        await self.ws.send_text(
            orjson.dumps({"event": "clear", "streamSid": self.stream_sid}).decode()
        )

    async def close(self, code: int = 1000) -> None:
        self.closed_by_peer = True
        await self.ws.close(code)

    async def wait_until(self, pred: Callable[[], bool], limit_s: float = 5.0) -> None:
        async with asyncio.timeout(limit_s):
            while not pred():
                if self.disconnected.is_set() and not pred():
                    raise AssertionError("simulator disconnected before the condition held")
                await asyncio.sleep(0.002)


Behaviour = Callable[[PeerCall], Awaitable[None]]


async def idle(call: PeerCall) -> None:
    """Stay on the line until the simulator leaves."""
    await call.disconnected.wait()


class TwilioPeer:
    """Serves ``/twilio/voice``, ``/twilio/media`` and ``/twilio/status`` on 127.0.0.1."""

    def __init__(self, account_sid: str, auth_token: str, behaviour: Behaviour = idle) -> None:
        self.account_sid = account_sid
        self.validator = RequestValidator(auth_token)
        self.behaviour = behaviour
        self.webhooks: list[tuple[dict[str, str], bool]] = []
        self.status_callbacks: list[tuple[dict[str, str], bool]] = []
        self.calls: list[PeerCall] = []
        self.tokens: set[str] = set()
        self.behaviour_errors: list[BaseException] = []
        self.app = FastAPI()
        self.app.add_api_route("/twilio/voice", self._voice, methods=["POST"])
        self.app.add_api_route("/twilio/status", self._status, methods=["POST"])
        self.app.add_api_websocket_route("/twilio/media", self._media)
        self.server = LoopbackServer(self.app)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def stream_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/twilio/media"

    async def __aenter__(self) -> TwilioPeer:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    async def _form(self, request: Request, path: str) -> tuple[dict[str, str], bool]:
        params = dict(parse_qsl((await request.body()).decode()))
        sig = request.headers.get("X-Twilio-Signature", "")
        ok = bool(self.validator.validate(self.base_url + path, params, sig))
        return params, ok

    async def _voice(self, request: Request) -> Response:
        params, ok = await self._form(request, "/twilio/voice")
        self.webhooks.append((params, ok))
        if not ok:
            return Response("bad signature", status_code=403)
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            f'<Stream url="{self.stream_url}">'
            f'<Parameter name="token" value="{token}"/>'
            f'<Parameter name="call_sid" value="{params["CallSid"]}"/>'
            "</Stream></Connect></Response>"
        )
        return Response(twiml, media_type="text/xml")

    async def _status(self, request: Request) -> Response:
        params, ok = await self._form(request, "/twilio/status")
        self.status_callbacks.append((params, ok))
        return Response(status_code=204 if ok else 403)

    async def _media(self, ws: WebSocket) -> None:
        sig = ws.headers.get("x-twilio-signature", "")
        sig_ok = bool(self.validator.validate(self.stream_url, {}, sig))
        await ws.accept()
        call = PeerCall(ws=ws, ws_signature_ok=sig_ok)
        self.calls.append(call)
        connected = orjson.loads(await ws.receive_text())
        assert connected["event"] == "connected"
        start = orjson.loads(await ws.receive_text())
        call.start = start
        token = start["start"]["customParameters"].get("token")
        call.token_ok = token in self.tokens
        self.tokens.discard(token)
        if not call.token_ok:
            await call.close(1008)
            return
        reader = asyncio.create_task(self._read(call))
        try:
            await self.behaviour(call)
        except BaseException as exc:
            self.behaviour_errors.append(exc)
            raise
        finally:
            await asyncio.wait_for(asyncio.shield(reader), 10)

    async def _read(self, call: PeerCall) -> None:
        try:
            while True:
                message = await call.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("text") or message.get("bytes") or b""
                try:
                    msg = orjson.loads(data)
                except orjson.JSONDecodeError:
                    msg = {"event": "<raw>", "raw": data}
                if not isinstance(msg, dict):
                    msg = {"event": "<raw>", "raw": data}
                call.received.append(Received(time.monotonic(), msg))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            call.disconnected.set()
