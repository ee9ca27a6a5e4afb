"""Realtime codec: recorded GA and beta server events, and every client event the bridge
sends, checked against the ``openai`` package's typed models (docs/protocols.md §1)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from app.errors import RealtimeCodecError
from app.realtime import codec
from app.realtime import events as ev
from app.realtime.dialect import session_config
from flows import FlowCatalog
from tests.protocol import validate
from tools.registry import default_registry

FIX = Path(__file__).parent.parent / "fixtures/realtime"


def _lines(name: str) -> list[str]:
    return (FIX / name).read_text().splitlines()


@pytest.mark.parametrize("name, beta", [("ga_turn.jsonl", False), ("beta_turn.jsonl", True)])
def test_recorded_fixtures_are_valid_sdk_events(name: str, beta: bool) -> None:
    for line in _lines(name):
        validate(orjson.loads(line), side="server", beta=beta)


def test_ga_turn_decodes() -> None:
    out = [codec.decode(line) for line in _lines("ga_turn.jsonl")]
    (
        started,
        stopped,
        committed,
        transcript,
        created,
        added,
        delta,
        adone,
        tdone,
        done,
        trunc,
        err,
        rl,
    ) = out
    assert started == ev.InputAudioBufferSpeechStarted(audio_start_ms=1520, item_id="item_user1")
    assert stopped == ev.InputAudioBufferSpeechStopped(audio_end_ms=3180, item_id="item_user1")
    assert committed == ev.InputAudioBufferCommitted(item_id="item_user1", previous_item_id=None)
    assert isinstance(transcript, ev.ConversationItemInputAudioTranscriptionCompleted)
    assert transcript.transcript == "What's the status of order 1042?"
    assert created == ev.ResponseCreated(response_id="resp_1")
    assert isinstance(added, ev.ResponseOutputItemAdded) and added.item["id"] == "item_a1"
    assert isinstance(delta, ev.ResponseOutputAudioDelta)
    assert (delta.item_id, delta.size, delta.delta) == ("item_a1", 10, "f39/f39/f39/fw==")
    assert adone == ev.ResponseOutputAudioDone(response_id="resp_1", item_id="item_a1")
    assert (
        isinstance(tdone, ev.ResponseOutputAudioTranscriptDone)
        and tdone.transcript == "Let me check."
    )
    assert isinstance(done, ev.ResponseDone)
    assert done.status == "completed" and done.usage and done.usage["total_tokens"] == 120
    assert done.output[0]["name"] == "get_order_status"
    assert trunc == ev.ConversationItemTruncated(item_id="item_a1", audio_end_ms=640)
    assert isinstance(err, ev.Error) and err.code == "invalid_value" and err.event_id == "sb_4"
    assert isinstance(rl, ev.Ignored) and rl.type == "rate_limits.updated"


def test_beta_names_map_onto_the_same_model() -> None:
    out = [codec.decode(line) for line in _lines("beta_turn.jsonl")]
    assert isinstance(out[1], ev.Ignored) and out[1].type == "conversation.item.added"
    assert isinstance(out[2], ev.ResponseOutputAudioDelta) and out[2].size == 10
    assert isinstance(out[3], ev.ResponseOutputAudioDone)
    assert isinstance(out[4], ev.ResponseOutputAudioTranscriptDone)
    assert isinstance(out[5], ev.ResponseDone)
    assert (out[5].status, out[5].status_reason) == ("cancelled", "turn_detected")


@pytest.mark.parametrize(
    "raw, why",
    [
        ("{", "invalid JSON"),
        ('"x"', "not a JSON object"),
        ('{"event_id":"e"}', "no string 'type'"),
        (
            '{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"@@"}',
            "base64",
        ),
        ('{"type":"input_audio_buffer.speech_started","item_id":"i"}', "audio_start_ms"),
        ('{"type":"response.done"}', "response"),
    ],
)
def test_malformed_events_raise(raw: str, why: str) -> None:
    with pytest.raises(RealtimeCodecError, match=why):
        codec.decode(raw)


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_every_client_event_is_valid_for_the_sdk(beta: bool) -> None:
    flow = FlowCatalog.load().default
    tools = default_registry().definitions(flow.tools)
    c = codec.ClientEvents(beta=beta)
    sent = [
        c.session_update(session_config(flow, tools, beta=beta)),
        codec.ClientEvents.input_audio_append("f39/fw=="),
        c.truncate("item_a1", 640),
        c.user_text("The caller entered 42 on the keypad."),
        c.function_output("call_1", '{"ok": true}'),
        c.response_create(),
        c.response_create(codec.say_exactly("One moment.")),
        c.response_cancel(),
    ]
    for text in sent:
        validate(orjson.loads(text), side="client", beta=beta)
    update = orjson.loads(sent[0])["session"]
    if beta:
        assert update["input_audio_format"] == update["output_audio_format"] == "g711_ulaw"
        assert update["turn_detection"]["silence_duration_ms"] == flow.vad.silence_duration_ms
    else:
        assert update["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert update["audio"]["output"]["voice"] == flow.voice
        assert update["audio"]["input"]["turn_detection"]["threshold"] == flow.vad.threshold
    ids = [orjson.loads(t).get("event_id") for t in sent]
    assert len({i for i in ids if i}) == len(sent) - 1  # every event but append is traceable
