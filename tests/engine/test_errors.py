"""Bad input never closes the socket; handshakes need a key and a known path."""

from __future__ import annotations

import base64

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from switchboard_engine import EngineServer

from .conftest import ga_session, open_client


async def test_bad_events_get_errors_and_socket_stays_open(engine: EngineServer) -> None:
    client = await open_client(engine)
    await client.ws.send("{not json")
    assert (await client.recv())["error"]["code"] == "invalid_json"
    await client.ws.send("[1, 2]")
    assert (await client.recv())["error"]["code"] == "invalid_json"

    cases = [
        ({"type": "nope.nope", "event_id": "e1"}, "invalid_value", "type"),
        ({"event_id": "e2"}, "missing_required_parameter", "type"),
        ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
        ({"type": "input_audio_buffer.append", "audio": "***"}, "invalid_value", "audio"),
        ({"type": "session.update"}, "missing_required_parameter", "session"),
        ({"type": "session.update", "session": {"instructions": "x"}}, None, "session.type"),
        (
            {"type": "session.update", "session": {"type": "realtime", "bogus": 1}},
            "unknown_parameter",
            "session.bogus",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
                },
            },
            "unsupported_audio_format",
            "session.audio.input.format",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_x", "output": "{}"},
            },
            "invalid_value",
            "item.call_id",
        ),
        ({"type": "conversation.item.delete", "item_id": "item_x"}, "invalid_value", "item_id"),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "item_x",
                "content_index": 0,
                "audio_end_ms": 10,
            },
            "item_truncate_invalid_item_id",
            "item_id",
        ),
    ]
    for event, code, param in cases:
        await client.send(event)
        err = await client.recv()
        assert err["type"] == "error", event
        assert err["error"]["type"] == "invalid_request_error"
        if code is not None:
            assert err["error"]["code"] == code, event
        assert err["error"]["param"] == param, event
        if "event_id" in event:
            assert err["error"]["event_id"] == event["event_id"]

    # A user item cannot be truncated; it can be deleted.
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "The caller pressed 5"}],
            },
        }
    )
    added = await client.recv_until("conversation.item.done")
    item_id = added[-1]["item"]["id"]
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 0,
        }
    )
    assert (await client.recv())["error"]["code"] == "invalid_value"
    await client.send({"type": "conversation.item.delete", "item_id": item_id})
    assert (await client.recv())["type"] == "conversation.item.deleted"

    # Still open and working.
    await client.send({"type": "session.update", "session": ga_session()})
    assert (await client.recv())["type"] == "session.updated"
    audio = base64.b64encode(b"\xff" * 160).decode()
    await client.send({"type": "input_audio_buffer.append", "audio": audio})
    await client.send({"type": "input_audio_buffer.clear"})
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    ids = [e["event_id"] for e in engine.sessions[-1].events_sent]
    assert len(ids) == len(set(ids))
    await client.ws.close()


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/realtime?model=gpt-realtime", {}, 401),
        ("/v1/realtime?model=gpt-realtime", {"Authorization": "Basic abc"}, 401),
        ("/v2/other", {"Authorization": "Bearer x"}, 404),
    ],
)
async def test_handshake_refused(
    engine: EngineServer, path: str, headers: dict[str, str], status: int
) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(f"ws://127.0.0.1:{engine.port}{path}", additional_headers=headers)
    assert info.value.response.status_code == status
