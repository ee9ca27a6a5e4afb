"""Engine test helpers: a real EngineServer on 127.0.0.1, a WebSocket client that
validates every server event against the openai package's typed models, and caller
speech generated with the engine's own TTS."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import typing
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pydantic
import pytest
from openai.types.beta.realtime import realtime_server_event as beta_events
from openai.types.realtime import realtime_server_event as ga_events
from websockets.asyncio.client import ClientConnection, connect

from app.audio import ulaw_to_pcm16
from app.realtime.dialect import session_config
from flows import FlowCatalog
from switchboard_engine import EngineServer, Scenario
from switchboard_engine.agent import AgentResources
from switchboard_engine.asr import shared_transcriber
from switchboard_engine.hints import FlowHints
from switchboard_engine.tts import synthesize
from tools.registry import default_registry

GA_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ga_events.RealtimeServerEvent)
BETA_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(beta_events.RealtimeServerEvent)

#: Fields the service sends on the session object that the openai models do not declare
#: (session.created/updated use the *request* model in the GA package).
RECV_TIMEOUT_S = 10.0
SESSION_EXTRAS = {"id", "object", "expires_at"}

TOOLS = [
    {
        "type": "function",
        "name": "get_order_status",
        "description": "Look up an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    },
    {
        "type": "function",
        "name": "end_call",
        "description": "Hang up",
        "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}},
    },
]


def _known_types(adapter_union: Any) -> set[str]:
    models = typing.get_args(typing.get_args(adapter_union)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in models}


GA_TYPES = _known_types(ga_events.RealtimeServerEvent)
BETA_TYPES = _known_types(beta_events.RealtimeServerEvent)


def _extras(obj: Any, path: str, out: list[str]) -> None:
    if isinstance(obj, pydantic.BaseModel):
        for key in obj.model_extra or {}:
            out.append(f"{path}.{key}")
        for name in type(obj).model_fields:
            _extras(getattr(obj, name), f"{path}.{name}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _extras(v, f"{path}[{i}]", out)


def validate_event(event: dict[str, Any], dialect: str) -> None:
    """Strictly validate one server event: known ``type``, required fields present and
    typed (pydantic), and no field the openai models do not declare (openai models
    allow extras, so those are collected and refused here)."""
    known, adapter = (GA_TYPES, GA_ADAPTER) if dialect == "ga" else (BETA_TYPES, BETA_ADAPTER)
    assert event.get("type") in known, f"unknown {dialect} event type {event.get('type')!r}"
    model = adapter.validate_python(event)
    assert type(model).__name__ != "dict"
    extras: list[str] = []
    _extras(model, "", extras)
    allowed = {f".session.{k}" for k in SESSION_EXTRAS}
    bad = [e for e in extras if e not in allowed]
    assert not bad, f"{event['type']}: fields not in the openai models: {bad}"


class Client:
    """A raw WebSocket Realtime client; every received event is validated."""

    def __init__(self, ws: ClientConnection, dialect: str) -> None:
        self.ws, self.dialect = ws, dialect
        self.received: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(RECV_TIMEOUT_S):
            raw = await self.ws.recv()
        event: dict[str, Any] = orjson.loads(raw)
        validate_event(event, self.dialect)
        self.received.append(event)
        return event

    async def recv_until(self, type_: str) -> list[dict[str, Any]]:
        """Events up to and including the first of ``type_``."""
        out = []
        while True:
            event = await self.recv()
            out.append(event)
            if event["type"] == type_:
                return out

    async def append(self, audio: bytes, chunk: int = 800) -> None:
        for i in range(0, len(audio), chunk):
            b64 = base64.b64encode(audio[i : i + chunk]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": b64})


async def open_client(
    server: EngineServer, path: str = "/v1/realtime?model=gpt-realtime", beta: bool = False
) -> Client:
    headers = {"Authorization": "Bearer test"}
    if beta:
        headers["OpenAI-Beta"] = "realtime=v1"
    ws = await connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers)
    client = Client(ws, "beta" if beta or path.startswith("/openai/realtime") else "ga")
    first = await client.recv()
    assert first["type"] == "session.created"
    return client


def ga_session(**overrides: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": "You are the Acme phone agent.",
        "tools": TOOLS,
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
                "transcription": {"model": "whisper-1", "language": "en"},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
        },
    }
    session.update(overrides)
    return session


def speech_extent_ms(ulaw: bytes, level: int = 300) -> tuple[float, float]:
    """(first, last) ms where the synthesized speech is audible (|sample| > level)."""
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.int32)
    loud = np.flatnonzero(np.abs(pcm) > level)
    return loud[0] / 8.0, loud[-1] / 8.0


async def caller_speech(text: str) -> bytes:
    """8 kHz μ-law speech for ``text`` (espeak-ng via the engine TTS)."""
    return await synthesize(text, voice="caller")


def silence(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


@pytest.fixture
def scenario() -> Scenario:
    return Scenario.load()


@pytest.fixture
async def engine(scenario: Scenario) -> AsyncIterator[EngineServer]:
    async with EngineServer(scenario, pace=50.0) as server:
        yield server


# --- the offline agent (Whisper + understanding) ----------------------------------------
#: Relative dates in agent tests resolve against this day.
AGENT_TODAY = dt.date(2026, 11, 20)


@pytest.fixture(scope="session")
def agent_resources() -> AgentResources:
    """The speech model (loaded, checksum-verified and warmed up once per test session)
    and the project's flows, shared by every agent engine like in one engine process."""
    resources = AgentResources(today=lambda: AGENT_TODAY)
    resources.transcriber = shared_transcriber(resources.asr)
    resources.hints = FlowHints.load(resources.flows_dir)
    return resources


@pytest.fixture
async def agent_engine(agent_resources: AgentResources) -> AsyncIterator[EngineServer]:
    """An engine that understands speech (espeak-ng voice, fast pace)."""
    async with EngineServer(pace=50.0, agent=agent_resources) as server:
        yield server


def support_session(beta: bool = False) -> dict[str, Any]:
    """The ``session`` object the bridge sends for the demo flow (flows/support.yaml)."""
    flow = FlowCatalog.load().get("support")
    assert flow is not None
    tools = default_registry().definitions(flow.tools)
    return session_config(flow, tools, beta=beta)
