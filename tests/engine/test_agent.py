"""The offline agent over real sockets: recorded speech → Whisper → understanding → a
function call, its result → a spoken answer, goodbye → end_call; GA, beta and the
official openai client.

The bundled recordings (Piper, voice joe) are understood with margin: test_asr.py checks
each one's tool call under int8 and float32 weights and beam sizes 1 and 5, so these
tests do not hang on how one CPU rounds one borderline transcription."""

from __future__ import annotations

import base64
import json
from typing import Any

from openai import AsyncOpenAI

from switchboard_engine import EngineServer
from switchboard_sim.assets import recording_ulaw

from .conftest import Client, open_client, silence, support_session, validate_event

ORDER_1042 = {
    "ok": True,
    "found": True,
    "order_id": "1042",
    "account_id": "ACME-1001",
    "item": "espresso machine",
    "quantity": 1,
    "status": "shipped",
    "delivery_date": "2026-11-24",
    "created_at_ms": 1793491200000,
}


async def _say(client: Client, recording: str) -> list[dict[str, Any]]:
    """Send a bundled recording (20 ms frames, faster than real time) and wait for the
    response it triggers."""
    await client.append(silence(500) + recording_ulaw(recording) + silence(900), chunk=160)
    return await client.recv_until("response.done")


def _call(done: dict[str, Any]) -> dict[str, Any]:
    calls = [o for o in done["response"]["output"] if o["type"] == "function_call"]
    assert len(calls) == 1, done["response"]["output"]
    return calls[0]


async def _answer(client: Client, call: dict[str, Any], output: dict[str, Any]) -> str:
    item = {
        "type": "function_call_output",
        "call_id": call["call_id"],
        "output": json.dumps(output),
    }
    await client.send({"type": "conversation.item.create", "item": item})
    await client.send({"type": "response.create"})
    events = await client.recv_until("response.done")
    kinds = ("response.output_audio_transcript.done", "response.audio_transcript.done")
    return str(next(e for e in events if e["type"] in kinds)["transcript"])


async def test_speech_to_function_call_to_spoken_answer_ga(agent_engine: EngineServer) -> None:
    client = await open_client(agent_engine)
    await client.send({"type": "session.update", "session": support_session()})
    await client.recv_until("session.updated")

    events = await _say(client, "order_status")
    transcript = next(
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    )["transcript"]
    call = _call(events[-1])
    assert call["name"] == "get_order_status", transcript
    assert json.loads(call["arguments"]) == {"order_id": "1042"}, transcript
    spoken = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert spoken["transcript"] == "Sure, one moment. Let me check order 1042."
    answer = await _answer(client, call, ORDER_1042)
    assert answer.startswith("Order 1042 is shipped. Delivery date: November 24.")

    events = await _say(client, "goodbye")
    call = _call(events[-1])
    assert call["name"] == "end_call"
    spoken = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert spoken["transcript"] == "Thanks for calling Acme. Goodbye!"
    # The goodbye came before the hang-up: its result gets an empty response.
    item = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"ok": true}'}
    await client.send({"type": "conversation.item.create", "item": item})
    await client.send({"type": "response.create"})
    done = (await client.recv_until("response.done"))[-1]["response"]
    assert (done["status"], done["output"]) == ("completed", [])
    # Every event was validated against the openai package's typed models (conftest).
    await client.ws.close()


async def test_speech_to_function_call_beta(agent_engine: EngineServer) -> None:
    client = await open_client(agent_engine, "/v1/realtime?model=gpt-4o-realtime-preview", True)
    await client.send({"type": "session.update", "session": support_session(beta=True)})
    await client.recv_until("session.updated")
    events = await _say(client, "agent_please")
    call = _call(events[-1])
    assert call["name"] == "transfer_call"
    assert json.loads(call["arguments"])["target"] == "human"
    types = [e["type"] for e in events]
    assert "response.audio_transcript.done" in types and "conversation.item.created" in types
    await client.ws.close()


async def test_transcription_does_not_block_the_socket(agent_engine: EngineServer) -> None:
    """While Whisper works on a turn, the engine keeps reading: a second turn spoken
    right after the first is detected before the first one's transcript is out."""
    client = await open_client(agent_engine)
    await client.send({"type": "session.update", "session": support_session()})
    await client.recv_until("session.updated")
    audio = recording_ulaw("agent_please")
    await client.append(silence(300) + audio + silence(700) + audio + silence(900), chunk=160)
    seen: list[str] = []
    while seen.count("input_audio_buffer.committed") < 2:
        seen.append((await client.recv())["type"])
    first_transcript = "conversation.item.input_audio_transcription.completed"
    assert seen.count(first_transcript) == 0  # the 2nd turn committed while the 1st was busy
    await client.ws.close()


async def test_official_client_ga_on_speech(agent_engine: EngineServer) -> None:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{agent_engine.port}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session=support_session())  # type: ignore[arg-type]
        audio = silence(500) + recording_ulaw("order_status") + silence(900)
        for i in range(0, len(audio), 160):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(audio[i : i + 160]).decode()
            )
        heard = ""
        async for event in conn:
            raw = event.model_dump(mode="json", exclude_unset=True)
            validate_event(raw, "ga")
            if raw["type"] == "conversation.item.input_audio_transcription.completed":
                heard = raw["transcript"]
            if raw["type"] == "response.done":
                call = _call(raw)
                break
        assert (call["name"], json.loads(call["arguments"])) == (
            "get_order_status",
            {"order_id": "1042"},
        ), heard


async def test_official_client_beta_on_speech(agent_engine: EngineServer) -> None:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{agent_engine.port}/v1")
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        await conn.session.update(session=support_session(beta=True))  # type: ignore[arg-type]
        audio = silence(500) + recording_ulaw("goodbye") + silence(900)
        for i in range(0, len(audio), 160):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(audio[i : i + 160]).decode()
            )
        async for event in conn:
            raw = event.model_dump(mode="json", exclude_unset=True)
            validate_event(raw, "beta")
            if raw["type"] == "response.done":
                assert _call(raw)["name"] == "end_call"
                break
