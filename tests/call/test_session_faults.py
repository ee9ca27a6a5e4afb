"""The call session when things go wrong, on a fake clock and recorded event sequences:
one response at a time, barge-in over queued items, a lost Realtime leg (reconnect and
replay), rollover before the service's cap, and never dead air."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from app.call import actions as act
from app.call.session import (
    DEAD_AIR_TIMER,
    FILLER_TIMER,
    RECONNECT_TIMER,
    RESPONSE_RETRY_TIMER,
    ROLLOVER_TIMER,
    CallSession,
    LegState,
    SessionLimits,
)
from app.realtime import events as ev
from flows import FlowCatalog
from tests.call.conftest import Clock
from tools.base import ToolOutcome

SID = "MZ" + "1" * 32


def make(clock: Clock, **limits: Any) -> CallSession:
    flow = FlowCatalog.load().default
    return CallSession(
        call_sid="CA" + "0" * 32,
        stream_sid=SID,
        flow=flow,
        beta=False,
        now_ms=clock,
        limits=SessionLimits(**limits),
    )


def ready(clock: Clock, **limits: Any) -> CallSession:
    s = make(clock, **limits)
    s.start([])
    s.on_realtime(ev.SessionUpdated(session={}))  # greeting response.create
    s.on_realtime(ev.ResponseCreated("r0"))
    s.on_realtime(ev.ResponseDone("r0", "completed", None, [], {}))
    return s


def realtime(actions: list[act.Action]) -> list[dict[str, Any]]:
    return [orjson.loads(a.text) for a in actions if isinstance(a, act.SendRealtime)]


def types(actions: list[act.Action]) -> list[str]:
    return [e["type"] for e in realtime(actions)]


def timers(actions: list[act.Action]) -> dict[str, int]:
    return {a.name: a.delay_ms for a in actions if isinstance(a, act.StartTimer)}


def delta(item: str, ms: int, resp: str) -> ev.ResponseOutputAudioDelta:
    raw = b"\x7f" * (ms * 8)
    return ev.ResponseOutputAudioDelta(resp, item, base64.b64encode(raw).decode(), len(raw))


def call_done(resp: str, call_id: str = "c1", name: str = "get_order_status") -> ev.ResponseDone:
    out = [{"type": "function_call", "call_id": call_id, "name": name, "arguments": "{}"}]
    return ev.ResponseDone(resp, "completed", None, out, {})


def outcome(call_id: str = "c1") -> ToolOutcome:
    return ToolOutcome("get_order_status", call_id, "{}", {"status": "shipped"}, None, 12.0)


# --- one response at a time --------------------------------------------------------------


def test_a_tool_result_waits_for_the_filler_in_flight(clock: Clock) -> None:
    s = ready(clock)
    s.on_realtime(ev.ResponseCreated("r1"))
    s.on_realtime(call_done("r1"))
    filler = s.on_timer(FILLER_TIMER)
    assert types(filler) == ["response.create"]  # "One moment…"
    # The tool answers before the filler's response.created: no second response.create.
    out = s.on_tool_results([outcome()])
    assert types(out) == ["conversation.item.create"]
    s.on_realtime(ev.ResponseCreated("r2"))
    assert types(s.on_realtime(ev.ResponseDone("r2", "completed", None, [], {}))) == [
        "response.create"
    ]


def test_a_refused_response_create_waits_and_is_sent_after_the_active_one(
    clock: Clock,
) -> None:
    s = ready(clock)
    assert types(s.say("Hello")) == ["response.create"]
    out = s.on_realtime(
        ev.Error("invalid_request_error", "conversation_already_has_active_response", "busy", None)
    )
    assert types(out) == [] and RESPONSE_RETRY_TIMER in timers(out)
    # The response that was active (started by server VAD) runs and ends:
    s.on_realtime(ev.ResponseCreated("vad1"))
    out = s.on_realtime(ev.ResponseDone("vad1", "completed", None, [], {}))
    (create,) = realtime(out)
    assert create["type"] == "response.create"
    assert "Hello" in create["response"]["instructions"]


def test_a_refused_response_create_is_retried_when_nothing_else_comes(clock: Clock) -> None:
    s = ready(clock)
    s.say("Hello")
    s.on_realtime(
        ev.Error("invalid_request_error", "conversation_already_has_active_response", "busy", None)
    )
    assert types(s.on_timer(RESPONSE_RETRY_TIMER)) == ["response.create"]


def test_filler_is_not_spoken_while_a_response_is_active(clock: Clock) -> None:
    s = ready(clock)
    s.on_realtime(ev.ResponseCreated("r1"))
    s.on_realtime(call_done("r1"))
    s.say("Operator line")
    assert types(s.on_timer(FILLER_TIMER)) == []


# --- barge-in over queued items -------------------------------------------------------


def test_barge_in_truncates_the_item_playing_and_deletes_the_one_queued_behind(
    clock: Clock,
) -> None:
    s = ready(clock)
    s.on_realtime(ev.ResponseCreated("r1"))
    for _ in range(10):
        s.on_audio_delta(delta("a1", 100, "r1"))  # 1000 ms, generated at t=0
    s.on_realtime(ev.ResponseOutputAudioDone("r1", "a1"))
    s.on_realtime(ev.ResponseDone("r1", "completed", None, [{"type": "message", "id": "a1"}], {}))
    s.say("And another thing")
    s.on_realtime(ev.ResponseCreated("r2"))
    for _ in range(10):
        s.on_audio_delta(delta("a2", 100, "r2"))  # queued behind a1 at the carrier
    clock.t = 400.0
    out = s.on_realtime(ev.InputAudioBufferSpeechStarted(2000, "u1"))
    carrier = [orjson.loads(a.text)["event"] for a in out if isinstance(a, act.SendCarrier)]
    assert carrier == ["clear"]
    events = realtime(out)
    assert [(e["type"], e["item_id"]) for e in events] == [
        ("conversation.item.truncate", "a1"),
        ("conversation.item.delete", "a2"),
    ]
    assert events[0]["audio_end_ms"] == 400


# --- the Realtime leg lost and replaced -----------------------------------------------


def test_a_lost_leg_is_reopened_and_the_conversation_replayed(clock: Clock) -> None:
    s = ready(clock)
    s.on_realtime(ev.ConversationItemInputAudioTranscriptionCompleted("u1", "order 1042"))
    s.on_realtime(ev.ResponseCreated("r1"))
    s.on_realtime(call_done("r1"))
    s.on_tool_results([outcome()])
    s.on_realtime(ev.ResponseCreated("r2"))
    for _ in range(5):
        s.on_audio_delta(delta("a2", 100, "r2"))
    s.on_realtime(ev.ResponseOutputAudioTranscriptDone("r2", "a2", "It has shipped."))
    s.on_realtime(ev.ResponseOutputAudioDone("r2", "a2"))
    s.on_realtime(ev.ResponseDone("r2", "completed", None, [{"type": "message", "id": "a2"}], {}))
    clock.t = 5000.0
    for name in list(s.marks):
        s.on_mark(name)

    lost = s.on_realtime_lost("socket closed 1006")
    assert s.leg is LegState.down
    assert timers(lost) == {DEAD_AIR_TIMER: 5000, RECONNECT_TIMER: 0}
    # The caller's audio is kept meanwhile, not sent anywhere.
    assert s.on_carrier_media("AAAA") is None
    assert any(isinstance(a, act.ConnectRealtime) for a in s.on_timer(RECONNECT_TIMER))

    clock.t = 5300.0
    opened = realtime(s.on_realtime_open())
    assert opened[0]["type"] == "session.update"
    items = [e["item"] for e in opened[1:]]
    assert [(i["type"], i.get("role")) for i in items] == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
    ]
    assert items[0]["content"][0]["text"] == "order 1042"
    assert items[3]["content"][0] == {"type": "output_text", "text": "It has shipped."}

    clock.t = 5450.0
    out = s.on_realtime(ev.SessionUpdated(session={}))
    assert s.leg is LegState.ready
    assert types(out) == ["input_audio_buffer.append"]  # the frame kept while it was down
    assert any(isinstance(a, act.CancelTimer) and a.name == DEAD_AIR_TIMER for a in out)
    assert s.reconnect_ms == [450]


def test_a_leg_lost_mid_answer_asks_the_new_session_to_go_on(clock: Clock) -> None:
    s = ready(clock)
    s.on_realtime(ev.ResponseCreated("r1"))
    s.on_audio_delta(delta("a1", 100, "r1"))
    s.on_realtime_lost("liveness timeout")
    s.on_timer(RECONNECT_TIMER)
    s.on_realtime_open()
    assert types(s.on_realtime(ev.SessionUpdated(session={}))) == ["response.create"]


def test_reconnect_failures_back_off_then_fall_back_within_the_budget(clock: Clock) -> None:
    s = ready(clock, reconnect_budget_ms=2000, reconnect_backoff_ms=(0, 500, 1000))
    s.on_realtime_lost("engine killed")
    delays = []
    for t in (10.0, 600.0):
        clock.t = t
        delays.append(timers(s.on_realtime_connect_failed("connection refused"))[RECONNECT_TIMER])
    assert delays == [500, 1000]
    clock.t = 1700.0
    out = s.on_realtime_connect_failed("connection refused")
    (fb,) = [a for a in out if isinstance(a, act.Fallback)]
    assert fb.line and fb.target == ""  # the default flow hangs up after its apology
    assert s.leg is LegState.failed


def test_dead_air_timer_falls_back_when_no_session_is_ready(clock: Clock) -> None:
    s = make(clock, dead_air_max_ms=5000)
    assert timers(s.take_actions()) == {DEAD_AIR_TIMER: 5000}
    s.start([])  # socket open, session.update sent, but session.updated never comes
    clock.t = 5000.0
    assert any(isinstance(a, act.Fallback) for a in s.on_timer(DEAD_AIR_TIMER))


def test_session_update_refused_falls_back_at_once(clock: Clock) -> None:
    s = make(clock)
    update = realtime(s.start([]))[0]
    out = s.on_realtime(
        ev.Error("invalid_request_error", "invalid_value", "bad voice", update["event_id"])
    )
    (fb,) = [a for a in out if isinstance(a, act.Fallback)]
    assert "session.update refused" in fb.reason
    assert s.end_reason("carrier stop").startswith("fallback: session.update refused")


def test_tool_results_after_a_fallback_ask_for_nothing(clock: Clock) -> None:
    s = ready(clock)
    s.on_realtime(ev.ResponseCreated("r1"))
    s.on_realtime(call_done("r1"))
    s.on_realtime_lost("gone")
    clock.t = 10_000.0
    s.on_timer(DEAD_AIR_TIMER)
    assert types(s.on_tool_results([outcome()])) == []


# --- rollover before the service's session cap ------------------------------------------


def test_rollover_waits_for_a_quiet_moment_and_keeps_the_context(clock: Clock) -> None:
    s = make(clock, rollover_after_ms=1_000_000)
    s.start([])
    out = s.on_realtime(ev.SessionUpdated(session={}))
    assert timers(out)[ROLLOVER_TIMER] == 1_000_000
    s.on_realtime(ev.ResponseCreated("r0"))
    s.on_realtime(ev.ConversationItemInputAudioTranscriptionCompleted("u1", "hello"))
    clock.t = 1_000_000.0
    # The greeting response is still active: not quiet, look again soon.
    assert ROLLOVER_TIMER in timers(s.on_timer(ROLLOVER_TIMER))
    s.on_realtime(ev.ResponseDone("r0", "completed", None, [], {}))
    out = s.on_timer(ROLLOVER_TIMER)
    assert any(isinstance(a, act.CloseRealtime) for a in out)
    assert DEAD_AIR_TIMER not in timers(out)  # planned: not a fault
    s.on_timer(RECONNECT_TIMER)
    opened = realtime(s.on_realtime_open())
    assert [e["type"] for e in opened] == ["session.update", "conversation.item.create"]
    assert types(s.on_realtime(ev.SessionUpdated(session={}))) == []  # nothing to say
    assert s.rollovers == 1 and s.reconnects == 0
