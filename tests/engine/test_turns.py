"""Full scripted turns over a real socket: VAD commit → transcript → function call →
function_call_output → spoken answer; goodbye + end_call; manual commit; idle timeout."""

from __future__ import annotations

import base64
import json
from typing import Any

from switchboard_engine import EngineServer

from .conftest import Client, caller_speech, ga_session, open_client, silence


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def _audio_bytes(events: list[dict[str, Any]], name: str) -> int:
    return sum(len(base64.b64decode(e["delta"])) for e in events if e["type"] == name)


async def _say_turn(client: Client, text: str) -> list[dict[str, Any]]:
    speech = await caller_speech(text)
    await client.append(silence(600) + speech + silence(900), chunk=160)
    return await client.recv_until("response.done")


async def test_full_conversation_ga(engine: EngineServer) -> None:
    client = await open_client(engine)
    await client.send({"type": "session.update", "session": ga_session()})
    await client.recv_until("session.updated")

    # Greeting forced by the bridge.
    await client.send(
        {
            "type": "response.create",
            "response": {
                "instructions": 'Say exactly this and nothing else: "Thanks for calling Acme."'
            },
        }
    )
    greeting = await client.recv_until("response.done")
    assert greeting[-1]["response"]["status"] == "completed"
    transcript_done = next(
        e for e in greeting if e["type"] == "response.output_audio_transcript.done"
    )
    assert transcript_done["transcript"] == "Thanks for calling Acme."
    assert _audio_bytes(greeting, "response.output_audio.delta") > 4000

    # Turn 1: the caller asks about an order → function call.
    events = await _say_turn(client, "What's the status of order 1042?")
    types = _types(events)
    expected = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert [t for t in types if t in expected] == expected
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["usage"]["input_tokens"] > 0 and done["usage"]["output_tokens"] > 0
    (call,) = done["output"]
    assert call["type"] == "function_call" and call["name"] == "get_order_status"
    assert json.loads(call["arguments"]) == {"order_id": "1042"}

    # The bridge runs the tool and asks for the answer.
    output = {"order_id": "1042", "status": "shipped", "delivery_date": "March 3"}
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": json.dumps(output),
            },
        }
    )
    added = await client.recv_until("conversation.item.done")
    assert added[-1]["item"]["type"] == "function_call_output"
    await client.send({"type": "response.create"})
    answer = await client.recv_until("response.done")
    text = next(e for e in answer if e["type"] == "response.output_audio_transcript.done")
    assert text["transcript"] == "Order 1042 is shipped. It should arrive on March 3."
    deltas = [e for e in answer if e["type"] == "response.output_audio.delta"]
    assert all(len(base64.b64decode(e["delta"])) <= 800 for e in deltas)
    assert len(deltas) > 10
    msg = answer[-1]["response"]["output"][0]
    assert msg["content"][0] == {"type": "output_audio", "transcript": text["transcript"]}
    assert answer[-1]["response"]["usage"]["output_token_details"]["audio_tokens"] > 0

    # Turn 2: goodbye → the goodbye audio, then end_call, in one response.
    events = await _say_turn(client, "That's all, thank you. Goodbye.")
    done = events[-1]["response"]
    assert [o["type"] for o in done["output"]] == ["message", "function_call"]
    assert done["output"][0]["content"][0]["transcript"] == "Thanks for calling Acme. Goodbye!"
    assert done["output"][1]["name"] == "end_call"
    assert _audio_bytes(events, "response.output_audio.delta") > 4000
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": done["output"][1]["call_id"],
                "output": '{"ok": true}',
            },
        }
    )
    await client.recv_until("conversation.item.done")
    await client.send({"type": "response.create"})
    last = await client.recv_until("response.done")
    final = next(e for e in last if e["type"] == "response.output_audio_transcript.done")
    assert final["transcript"] == "Goodbye."

    # Beyond the script: the generic fallback.
    events = await _say_turn(client, "Wait, one more thing")
    fallback = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert fallback["transcript"] == "Sorry, could you say that again?"
    await client.ws.close()


async def test_tool_error_and_user_text(engine: EngineServer) -> None:
    client = await open_client(engine)
    await client.send({"type": "session.update", "session": ga_session()})
    await client.recv_until("session.updated")
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What's the status of order 1042?"}],
            },
        }
    )
    await client.recv_until("conversation.item.done")
    await client.send({"type": "response.create"})
    events = await client.recv_until("response.done")
    call = events[-1]["response"]["output"][0]
    assert call["name"] == "get_order_status"
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": json.dumps({"error": {"code": "timeout", "message": "tool timed out"}}),
            },
        }
    )
    await client.recv_until("conversation.item.done")
    await client.send({"type": "response.create"})
    events = await client.recv_until("response.done")
    spoken = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert "tool timed out" in spoken["transcript"]
    await client.ws.close()


async def test_manual_commit_and_clear(engine: EngineServer) -> None:
    client = await open_client(engine)
    session = ga_session()
    session["audio"]["input"]["turn_detection"] = None
    await client.send({"type": "session.update", "session": session})
    updated = await client.recv_until("session.updated")
    assert updated[-1]["session"]["audio"]["input"]["turn_detection"] is None
    await client.append(silence(50))
    await client.send({"type": "input_audio_buffer.commit", "event_id": "c1"})
    err = await client.recv_until("error")
    assert err[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    assert err[-1]["error"]["event_id"] == "c1"
    await client.send({"type": "input_audio_buffer.clear"})
    await client.recv_until("input_audio_buffer.cleared")
    await client.append(await caller_speech("What's the status of order 1042?"))
    await client.send({"type": "input_audio_buffer.commit"})
    events = await client.recv_until("conversation.item.input_audio_transcription.completed")
    assert "input_audio_buffer.speech_started" not in _types(events)
    assert events[-1]["transcript"] == "What's the status of order 1042?"
    await client.send({"type": "response.create"})
    events = await client.recv_until("response.done")
    assert events[-1]["response"]["output"][0]["name"] == "get_order_status"
    await client.ws.close()


async def test_idle_timeout_triggers_a_response(engine: EngineServer) -> None:
    client = await open_client(engine)
    session = ga_session()
    session["audio"]["input"]["turn_detection"]["idle_timeout_ms"] = 5000
    await client.send({"type": "session.update", "session": session})
    await client.recv_until("session.updated")
    await client.append(silence(6000))
    events = await client.recv_until("response.done")
    timeout = next(e for e in events if e["type"] == "input_audio_buffer.timeout_triggered")
    assert timeout["audio_start_ms"] == 0 and 5000 <= timeout["audio_end_ms"] <= 5100
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    assert committed["item_id"] == timeout["item_id"]
    spoken = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert spoken["transcript"] == "Are you still there?"
    await client.ws.close()


async def test_text_only_modality(engine: EngineServer) -> None:
    client = await open_client(engine)
    await client.send({"type": "session.update", "session": ga_session(output_modalities=["text"])})
    await client.recv_until("session.updated")
    await client.send({"type": "response.create"})
    events = await client.recv_until("response.done")
    assert "response.output_audio.delta" not in _types(events)
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == "Thanks for calling Acme. How can I help you today?"
    await client.ws.close()
