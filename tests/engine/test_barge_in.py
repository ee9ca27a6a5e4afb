"""Barge-in, response.cancel and conversation.item.truncate over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard_engine import EngineServer, Scenario

from .conftest import caller_speech, ga_session, open_client, silence

LONG_LINE = (
    "Our records show several orders on your account, and I will read each of them "
    "to you slowly, one at a time, so please stay on the line while I do that."
)


@pytest.fixture
async def slow_engine(scenario: Scenario) -> AsyncIterator[EngineServer]:
    # Slow enough that the caller can interrupt mid-response (about 4 s of audio in 2 s).
    async with EngineServer(scenario, pace=2.0) as server:
        yield server


async def test_barge_in_cancels_and_truncate(slow_engine: EngineServer) -> None:
    client = await open_client(slow_engine)
    await client.send({"type": "session.update", "session": ga_session()})
    await client.recv_until("session.updated")
    await client.send(
        {
            "type": "response.create",
            "response": {"instructions": f'Say exactly this and nothing else: "{LONG_LINE}"'},
        }
    )
    events = await client.recv_until("response.output_audio.delta")
    response_id = events[0]["response"]["id"]
    item_id = events[-1]["item_id"]

    # A second response.create while one is active is refused; the socket stays open.
    await client.send({"type": "response.create", "event_id": "dup"})
    err = await client.recv_until("error")
    assert err[-1]["error"]["code"] == "conversation_already_has_active_response"
    assert err[-1]["error"]["event_id"] == "dup"

    # The caller talks over the reply.
    await client.append(silence(300) + await caller_speech("Hold on, wait a moment"))
    events = await client.recv_until("response.done")
    types = [e["type"] for e in events]
    assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
    done = events[-1]["response"]
    assert done["id"] == response_id
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    item_done = next(e for e in events if e["type"] == "response.output_item.done")
    assert item_done["item"]["status"] == "incomplete"
    session = slow_engine.sessions[-1]
    generated = next(i for i in session.items if i.id == item_id).generated_ms
    assert 100 <= generated < 4000

    # Truncate past what was generated: error.
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": generated + 500,
        }
    )
    err = await client.recv_until("error")
    assert err[-1]["error"]["code"] == "invalid_value"
    assert err[-1]["error"]["param"] == "audio_end_ms"

    # Truncate to what the caller heard.
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 100,
        }
    )
    truncated = await client.recv_until("conversation.item.truncated")
    assert truncated[-1]["audio_end_ms"] == 100 and truncated[-1]["item_id"] == item_id
    assert session.truncations == [
        {"item_id": item_id, "audio_end_ms": 100, "generated_ms": generated}
    ]
    item = next(i for i in session.items if i.id == item_id)
    assert len(item.text) < len(LONG_LINE) // 4
    await client.ws.close()


async def test_response_cancel(slow_engine: EngineServer) -> None:
    client = await open_client(slow_engine)
    await client.send({"type": "response.cancel", "event_id": "c0"})
    err = await client.recv_until("error")
    assert err[-1]["error"]["code"] == "response_cancel_not_active"
    await client.send(
        {
            "type": "response.create",
            "response": {"instructions": f'Say exactly this and nothing else: "{LONG_LINE}"'},
        }
    )
    await client.recv_until("response.output_audio.delta")
    await client.send({"type": "response.cancel"})
    events = await client.recv_until("response.done")
    assert events[-1]["response"]["status_details"] == {
        "type": "cancelled",
        "reason": "client_cancelled",
    }
    # Nothing of the cancelled response follows its response.done.
    await client.send({"type": "input_audio_buffer.clear"})
    follow = await client.recv_until("input_audio_buffer.cleared")
    assert [e["type"] for e in follow] == ["input_audio_buffer.cleared"]
    await client.ws.close()


async def test_no_interrupt_when_disabled(slow_engine: EngineServer) -> None:
    client = await open_client(slow_engine)
    session = ga_session()
    session["audio"]["input"]["turn_detection"].update(
        interrupt_response=False, create_response=False
    )
    await client.send({"type": "session.update", "session": session})
    await client.recv_until("session.updated")
    await client.send(
        {"type": "response.create", "response": {"instructions": 'Say exactly this: "x"'}}
    )
    await client.recv_until("response.created")
    await client.append(silence(300) + await caller_speech("Hello there"))
    events = await client.recv_until("response.done")
    assert events[-1]["response"]["status"] == "completed"
    await client.ws.close()
