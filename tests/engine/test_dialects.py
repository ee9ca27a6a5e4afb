"""Beta and Azure dialects, and the official openai client (GA and beta) as conformance."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai import AsyncOpenAI

from switchboard_engine import EngineServer

from .conftest import (
    TOOLS,
    caller_speech,
    ga_session,
    open_client,
    silence,
    validate_event,
)

BETA_SESSION = {
    "input_audio_format": "g711_ulaw",
    "output_audio_format": "g711_ulaw",
    "voice": "alloy",
    "modalities": ["audio", "text"],
    "instructions": "You are the Acme phone agent.",
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    },
    "input_audio_transcription": {"model": "whisper-1"},
    "tools": TOOLS,
}


@pytest.mark.parametrize(
    ("path", "beta"),
    [
        ("/v1/realtime?model=gpt-4o-realtime-preview", True),
        ("/openai/realtime?api-version=2025-04-01-preview&deployment=rt", False),
    ],
    ids=["openai-beta", "azure-preview"],
)
async def test_beta_turn(engine: EngineServer, path: str, beta: bool) -> None:
    client = await open_client(engine, path, beta=beta)
    assert client.dialect == "beta"
    await client.send({"type": "session.update", "session": BETA_SESSION})
    updated = (await client.recv_until("session.updated"))[-1]["session"]
    assert updated["input_audio_format"] == "g711_ulaw" and "type" not in updated
    speech = await caller_speech("What's the status of order 1042?")
    await client.append(silence(500) + speech + silence(900), chunk=160)
    events = await client.recv_until("response.done")
    types = [e["type"] for e in events]
    assert "conversation.item.created" in types and "conversation.item.added" not in types
    args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert "name" not in args_done
    call = events[-1]["response"]["output"][0]
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": json.dumps(
                    {"order_id": "1042", "status": "delayed", "delivery_date": "May 9"}
                ),
            },
        }
    )
    await client.recv_until("conversation.item.created")
    await client.send({"type": "response.create"})
    events = await client.recv_until("response.done")
    types = [e["type"] for e in events]
    assert "response.audio.delta" in types and "response.output_audio.delta" not in types
    done = next(e for e in events if e["type"] == "response.audio_transcript.done")
    assert done["transcript"] == "Order 1042 is delayed. It should arrive on May 9."
    await client.send(
        {"type": "session.update", "session": {"input_audio_format": "pcm16"}, "event_id": "x"}
    )
    err = (await client.recv_until("error"))[-1]
    assert err["error"]["code"] == "unsupported_audio_format"
    await client.ws.close()


async def test_azure_ga_path(engine: EngineServer) -> None:
    client = await open_client(engine, "/openai/v1/realtime?model=my-deployment")
    assert client.dialect == "ga"
    created = engine.sessions[-1].events_sent[0]
    assert created["session"]["model"] == "my-deployment"
    assert created["session"]["type"] == "realtime"
    await client.ws.close()


async def test_api_key_header_accepted(engine: EngineServer) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        f"ws://127.0.0.1:{engine.port}/openai/v1/realtime?model=d",
        additional_headers={"api-key": "k"},
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"


def _check(event: Any, dialect: str) -> dict[str, Any]:
    raw: dict[str, Any] = event.model_dump(mode="json", exclude_unset=True)
    validate_event(raw, dialect)
    return raw


async def test_official_client_ga(engine: EngineServer) -> None:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{engine.port}/v1")
    speech = await caller_speech("What's the status of order 1042?")
    seen: list[str] = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session=ga_session())  # type: ignore[arg-type]
        audio = silence(500) + speech + silence(900)
        for i in range(0, len(audio), 160):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(audio[i : i + 160]).decode()
            )
        call: dict[str, Any] = {}
        async for event in conn:
            raw = _check(event, "ga")
            seen.append(raw["type"])
            if raw["type"] == "response.done":
                call = raw["response"]["output"][0]
                break
        await conn.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": json.dumps(
                    {"order_id": "1042", "status": "shipped", "delivery_date": "June 1"}
                ),
            }
        )
        await conn.response.create()
        transcript = ""
        async for event in conn:
            raw = _check(event, "ga")
            seen.append(raw["type"])
            if raw["type"] == "response.output_audio_transcript.done":
                transcript = raw["transcript"]
            if raw["type"] == "response.done":
                break
    assert transcript == "Order 1042 is shipped. It should arrive on June 1."
    assert {
        "session.created",
        "input_audio_buffer.speech_started",
        "response.output_audio.delta",
    } <= set(seen)


async def test_official_client_beta(engine: EngineServer) -> None:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{engine.port}/v1")
    seen: list[str] = []
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        await conn.session.update(session=BETA_SESSION)  # type: ignore[arg-type]
        await conn.response.create(
            response={"instructions": 'Say exactly this and nothing else: "Hello from beta."'}
        )
        async for event in conn:
            raw = _check(event, "beta")
            seen.append(raw["type"])
            if raw["type"] == "response.done":
                assert raw["response"]["status"] == "completed"
                break
    assert seen[0] == "session.created"
    assert "response.audio.delta" in seen and "response.audio_transcript.done" in seen
