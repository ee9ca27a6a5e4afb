"""The call session on a fake clock: barge-in accounting, tools, call actions, transcript."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from app.call import actions as act
from app.call.session import ACTION_TIMER, FILLER_TIMER, CallSession
from app.call.state import CallState
from app.errors import ToolRefused
from app.realtime import events as ev
from flows import FlowCatalog
from tests.call.conftest import Clock
from tools.base import ToolOutcome

SID = "MZ" + "1" * 32


@pytest.fixture
def session(clock: Clock) -> CallSession:
    flow = FlowCatalog.load().default
    s = CallSession(call_sid="CA" + "0" * 32, stream_sid=SID, flow=flow, beta=False, now_ms=clock)
    s.start([])
    s.on_realtime(ev.SessionUpdated(session={}))  # greeting response.create
    return s


def delta(item: str, ms: int, resp: str = "r1") -> ev.ResponseOutputAudioDelta:
    raw = b"\x7f" * (ms * 8)
    return ev.ResponseOutputAudioDelta(resp, item, base64.b64encode(raw).decode(), len(raw))


def sent(actions: list[act.Action], kind: type) -> list[dict[str, Any]]:
    return [orjson.loads(a.text) for a in actions if isinstance(a, kind)]  # type: ignore[attr-defined]


def play(
    session: CallSession, item: str, chunks: int, ms: int = 100, resp: str = "r1"
) -> list[str]:
    """Send ``chunks`` audio deltas; return the mark names in order."""
    names = []
    for _ in range(chunks):
        out = session.on_audio_delta(delta(item, ms, resp))
        names += [m["mark"]["name"] for m in sent(out, act.SendCarrier) if m["event"] == "mark"]
    return names


def test_greeting_is_spoken_first(clock: Clock) -> None:
    flow = FlowCatalog.load().default
    s = CallSession(call_sid="CA1", stream_sid=SID, flow=flow, beta=False, now_ms=clock)
    update = sent(s.start([]), act.SendRealtime)
    assert update[0]["type"] == "session.update"
    out = sent(s.on_realtime(ev.SessionUpdated(session={})), act.SendRealtime)
    assert out[0]["type"] == "response.create"
    assert flow.greeting and flow.greeting in out[0]["response"]["instructions"]
    assert s.machine.state is CallState.active


def test_barge_in_clears_first_then_truncates_to_what_was_heard(
    session: CallSession, clock: Clock
) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    marks = play(session, "a1", 10)  # 1000 ms generated at t=0
    for i, name in enumerate(marks[:3], start=1):
        clock.t = 100.0 * i
        session.on_mark(name)
    clock.t = 347.0  # 47 ms after the third echo: the playhead is at 347 ms
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(2000, "u1"))
    carrier = [a for a in out if isinstance(a, act.SendCarrier)]
    assert carrier[0].control and orjson.loads(carrier[0].text)["event"] == "clear"
    assert out.index(carrier[0]) < min(
        i for i, a in enumerate(out) if isinstance(a, act.SendRealtime)
    )
    (trunc,) = sent(out, act.SendRealtime)
    assert trunc == {
        "type": "conversation.item.truncate",
        "item_id": "a1",
        "content_index": 0,
        "audio_end_ms": 347,
        "event_id": trunc["event_id"],
    }
    # Twilio echoes the flushed marks after `clear`: they must not move the playhead.
    for name in marks[3:]:
        assert session.on_mark(name) == []
    assert session.counters.marks_ignored == 7
    # In-flight audio of the cancelled response is dropped.
    assert session.on_audio_delta(delta("a1", 100)) == []


def test_no_truncate_when_nothing_was_heard(session: CallSession, clock: Clock) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    play(session, "a1", 5)
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(100, "u1"))  # same instant
    assert [m["event"] for m in sent(out, act.SendCarrier)] == ["clear"]
    assert sent(out, act.SendRealtime) == []


def test_truncate_never_past_generated_audio(session: CallSession, clock: Clock) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    play(session, "a1", 2)  # 200 ms sent; the response still streams
    clock.t = 5000.0  # long after: the estimate is clamped to the audio generated
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(100, "u1"))
    (trunc,) = sent(out, act.SendRealtime)
    assert trunc["audio_end_ms"] == 200


def test_no_barge_in_after_audio_fully_played(session: CallSession, clock: Clock) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    marks = play(session, "a1", 2)
    session.on_realtime(ev.ResponseOutputAudioDone("r1", "a1"))
    session.on_realtime(ev.ResponseDone("r1", "completed", None, [], None))
    clock.t = 300.0
    for m in marks:
        session.on_mark(m)
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(900, "u1"))
    assert sent(out, act.SendCarrier) == [] and sent(out, act.SendRealtime) == []


def test_interrupted_transcript_keeps_the_heard_words(session: CallSession, clock: Clock) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    play(session, "a1", 10)
    text = "one two three four five six seven eight nine ten"
    session.on_realtime(ev.ResponseOutputAudioTranscriptDone("r1", "a1", text))
    clock.t = 400.0
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(1000, "u1"))
    (entry,) = [a.op for a in out if isinstance(a, act.Store)]
    assert isinstance(entry, act.StoreTranscript)
    assert (entry.role, entry.text, entry.interrupted) == ("assistant", "one two three four", True)


def test_fully_played_item_is_recorded_whole(session: CallSession, clock: Clock) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    marks = play(session, "a1", 3)
    session.on_realtime(ev.ResponseOutputAudioTranscriptDone("r1", "a1", "Hello there."))
    session.on_realtime(ev.ResponseOutputAudioDone("r1", "a1"))
    clock.t = 300.0
    stores: list[act.Action] = []
    for m in marks:
        stores += [a for a in session.on_mark(m) if isinstance(a, act.Store)]
    (entry,) = [a.op for a in stores if isinstance(a, act.Store)]
    assert isinstance(entry, act.StoreTranscript)
    assert (entry.text, entry.interrupted) == ("Hello there.", False)


def _fc_done(resp: str, *calls: tuple[str, str, str]) -> ev.ResponseDone:
    output = [
        {"type": "function_call", "call_id": c, "name": n, "arguments": a} for c, n, a in calls
    ]
    return ev.ResponseDone(resp, "completed", None, output, {"total_tokens": 10})


def _outcome(name: str, call_id: str) -> ToolOutcome:
    return ToolOutcome(name, call_id, "{}", {"ok": True}, None, 12.0)


def test_function_calls_round_trip_with_one_response_create(session: CallSession) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    out = session.on_realtime(
        _fc_done(
            "r1", ("c1", "get_order_status", '{"order_id":"1042"}'), ("c2", "lookup_customer", "{}")
        )
    )
    (run,) = [a for a in out if isinstance(a, act.RunTools)]
    assert [c.name for c in run.calls] == ["get_order_status", "lookup_customer"]
    assert any(isinstance(a, act.StartTimer) and a.name == FILLER_TIMER for a in out)
    out = session.on_tool_results(
        [_outcome("get_order_status", "c1"), _outcome("lookup_customer", "c2")]
    )
    msgs = sent(out, act.SendRealtime)
    assert [m["type"] for m in msgs] == ["conversation.item.create"] * 2 + ["response.create"]
    assert [m["item"]["call_id"] for m in msgs[:2]] == ["c1", "c2"]
    assert sum(isinstance(a, act.Store) and isinstance(a.op, act.StoreToolCall) for a in out) == 2


def test_filler_line_then_tool_response_waits_for_it(session: CallSession) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    session.on_realtime(_fc_done("r1", ("c1", "get_order_status", "{}")))
    filler = sent(session.on_timer(FILLER_TIMER), act.SendRealtime)
    assert filler[0]["type"] == "response.create"
    assert session.flow.filler.lines[0] in filler[0]["response"]["instructions"]
    session.on_realtime(ev.ResponseCreated("r2"))
    out = session.on_tool_results([_outcome("get_order_status", "c1")])
    assert [m["type"] for m in sent(out, act.SendRealtime)] == ["conversation.item.create"]
    out = session.on_realtime(ev.ResponseDone("r2", "completed", None, [], None))
    assert [m["type"] for m in sent(out, act.SendRealtime)] == ["response.create"]


def test_second_transfer_is_refused(session: CallSession) -> None:
    session.request_transfer("+15550109999", "caller asked")
    with pytest.raises(ToolRefused):
        session.request_transfer("+15550108888", "again")


def test_hangup_waits_for_the_goodbye_audio_mark(session: CallSession, clock: Clock) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    session.on_realtime(_fc_done("r1", ("c1", "end_call", "{}")))
    session.request_hangup("caller finished")
    session.on_tool_results([_outcome("end_call", "c1")])
    session.on_realtime(ev.ResponseCreated("r2"))
    marks = play(session, "bye", 3, resp="r2")
    session.on_realtime(ev.ResponseOutputAudioDone("r2", "bye"))
    out = session.on_realtime(ev.ResponseDone("r2", "completed", None, [], None))
    assert not any(isinstance(a, act.Hangup) for a in out)
    for m in marks[:-1]:
        assert not any(isinstance(a, act.Hangup) for a in session.on_mark(m))
    out = session.on_mark(marks[-1])
    assert any(isinstance(a, act.Hangup) for a in out)
    assert any(isinstance(a, act.CancelTimer) and a.name == ACTION_TIMER for a in out)
    assert session.machine.state is CallState.ending


def test_hangup_grace_timer_fires_when_no_mark_returns(session: CallSession) -> None:
    session.request_hangup("bye")
    out = session.on_timer(ACTION_TIMER)
    assert [type(a) for a in out if isinstance(a, act.Hangup)] == [act.Hangup]


def test_dtmf_digits_become_one_user_text_item(session: CallSession) -> None:
    session.on_realtime(ev.ResponseDone("", "completed", None, [], None))  # greeting done
    for d in "1042":
        out = session.on_dtmf(d)
        assert sent(out, act.SendRealtime) == []
    out = session.on_dtmf("#")
    msgs = sent(out, act.SendRealtime)
    assert msgs[0]["item"]["content"][0]["text"] == "The caller entered 1042 on the keypad."
    assert msgs[1]["type"] == "response.create"


def test_small_chunks_are_marked_every_100_ms_and_at_the_end(
    session: CallSession, clock: Clock
) -> None:
    session.on_realtime(ev.ResponseCreated("r1"))
    marks = play(session, "a1", 12, ms=20)  # 240 ms in 20 ms chunks
    assert [int(m.split(":")[1]) for m in marks] == [1, 2]  # after 100 ms and 200 ms
    out = session.on_realtime(ev.ResponseOutputAudioDone("r1", "a1"))
    (tail,) = sent(out, act.SendCarrier)
    assert tail["event"] == "mark"
    assert session.marks[tail["mark"]["name"]][1] == 240.0
    session.on_realtime(ev.ResponseDone("r1", "completed", None, [], None))
    assert session.on_realtime(ev.ResponseOutputAudioDone("r1", "a1")) == []  # marked once
    clock.t = 100.0
    session.on_mark(marks[0])
    clock.t = 130.0  # 30 ms after the echo of the 100 ms mark
    assert session.items["a1"].heard_ms(clock.t) == 130.0
    clock.t = 300.0
    for m in [marks[1], tail["mark"]["name"]]:
        session.on_mark(m)
    assert session.items["a1"].fully_played()


def test_late_echoes_do_not_pull_the_playhead_back(session: CallSession, clock: Clock) -> None:
    """Echoes arrive after the audio played (network latency): the playhead keeps running
    from the start of playback instead of re-anchoring on each late echo."""
    session.on_realtime(ev.ResponseCreated("r1"))
    marks = play(session, "a1", 10)
    for i, name in enumerate(marks[:3], start=1):
        clock.t = 100.0 * i + 15  # each echo 15 ms late
        session.on_mark(name)
    clock.t = 347.0
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(2000, "u1"))
    (trunc,) = sent(out, act.SendRealtime)
    assert trunc["audio_end_ms"] == 347  # not 332 (300 + 32 from the late echo)


def test_a_dry_carrier_queue_pauses_the_playhead(session: CallSession, clock: Clock) -> None:
    """Audio came slower than real time: the queue ran dry and playback paused until the
    next chunk was sent. The send log shows it; the echo confirms it (within its lag)."""
    session.on_realtime(ev.ResponseCreated("r1"))
    first = play(session, "a1", 2)  # 200 ms at t=0, then nothing until t=500
    clock.t = 205.0
    session.on_mark(first[-1])
    clock.t = 500.0
    later = play(session, "a1", 3)  # plays 500..800 on the carrier
    clock.t = 601.0
    session.on_mark(later[0])  # 300 ms played at t=600, as the send log says
    clock.t = 650.0
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(2000, "u1"))
    (trunc,) = sent(out, act.SendRealtime)
    assert trunc["audio_end_ms"] == 350  # 200 + 150, not the free-running 500


def test_a_carrier_stall_the_send_log_cannot_show_re_anchors_on_the_echo(
    session: CallSession, clock: Clock
) -> None:
    """All audio was sent at once, but the carrier played it late (its own network): the
    echo lagging the estimate by more than the tolerance re-anchors the playhead."""
    session.on_realtime(ev.ResponseCreated("r1"))
    marks = play(session, "a1", 10)  # 1000 ms at t=0
    clock.t = 500.0
    session.on_mark(marks[2])  # only 300 ms played at t=500: the estimate said 500
    clock.t = 550.0
    out = session.on_realtime(ev.InputAudioBufferSpeechStarted(2000, "u1"))
    (trunc,) = sent(out, act.SendRealtime)
    assert trunc["audio_end_ms"] == 350
