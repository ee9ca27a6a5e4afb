"""Warm transfer through the simulator on real sockets: the target answers (briefed, then
connected), does not answer, is busy, or declines after the briefing; the caller comes
back to the agent with the conversation replayed; every step is in Redis."""

from __future__ import annotations

from typing import Any

import pytest

from app.carrier import warm
from flows import WarmTransferLines
from switchboard_engine import Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript, SimulatedCallResult
from switchboard_sim.dial import TargetRule
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack

CALLER = "+15555550123"
SUPPORT = "+15550100000"
HUMAN = "+15550109999"  # the support flow's "human" target
HOLD = "Please hold while I ring them."
_DEFAULT_LINES = WarmTransferLines()  # the flow's transfer.lines (support keeps the defaults)
LINES = {
    "no-answer": _DEFAULT_LINES.no_answer,
    "busy": _DEFAULT_LINES.busy,
    "decline": _DEFAULT_LINES.declined,
}
#: Short rings and decline windows: the added test time stays small.
FAST = {"transfer_ring_timeout_s": 1, "transfer_decline_wait_s": 1}
#: The caller's side in real time (20 ms frames every 20 ms): a faster one plays the hold
#: line before the server's playback timeline has, and the return stream's offsets, taken
#: from the wall clock, could then start before that line's (seen under parallel workers).
SPEED_MS = 20


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "warm",
            "greeting": "Hello.",
            "turns": [
                {
                    "transcript": "Can I talk to a person please?",
                    "function_call": {
                        "name": "transfer_call",
                        "arguments": {"target": "human", "mode": "warm"},
                    },
                }
            ],
            "after_tool": {"transfer_call": HOLD},
        }
    )


async def _call(stack: Stack, rule: TargetRule) -> SimulatedCallResult:
    stack.sim.targets[HUMAN] = rule
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        caller_audio=[recording_ulaw("agent_please")],
        max_duration_s=30,
        frame_interval_ms=SPEED_MS,
        after_transfer=CallScript(
            from_number=CALLER,
            to_number=SUPPORT,
            hangup_after_ms=800,
            max_duration_s=20,
            frame_interval_ms=SPEED_MS,
        ),
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.errors == []
    assert result.ended_by == "transfer" and result.transferred_to == HUMAN
    assert result.played_bytes_total == result.agent_audio_bytes_received  # hold line heard
    return result


def _reasons(stored: dict[str, Any]) -> list[str]:
    return [r["reason"] for r in stored["routing"]]


def _assert_briefed(result: SimulatedCallResult, first_user_turn: str) -> None:
    dial = result.dial
    assert dial is not None and dial.noun == "Number" and dial.timeout_s == 1
    briefing, prompt = dial.heard
    # Who, what they want (their own words), why: from the call so far, short.
    assert briefing.startswith("Transferred call from a caller from a number ending 0123.")
    assert "Reason: caller asked for a transfer." in briefing
    assert f'They said: "{first_user_turn}' in briefing
    assert len(briefing) <= warm.MAX_BRIEFING_CHARS and CALLER not in briefing
    assert prompt == "Press 9 to decline, or stay on the line to be connected."


async def test_answered_warm_transfer_briefs_the_target_then_connects(make_stack: Any) -> None:
    stack: Stack = await make_stack(scenario=_scenario(), **FAST)
    result = await _call(stack, TargetRule("answer", ring_ms=200, talk_ms=1100))
    stored = await read_call(stack.store, result.call_sid)
    user = next(t["text"] for t in stored["transcript"] if t["role"] == "user")
    _assert_briefed(result, user)
    dial = result.dial
    assert dial is not None and dial.connected and dial.pressed == ""
    assert (dial.dial_call_status, dial.http_statuses["dial-action"]) == ("completed", 200)
    assert dial.dial_call_duration_s >= 1
    assert "<Hangup" in dial.action_twiml and result.after_transfer is None
    assert _reasons(stored) == [
        "number_match",
        "warm transfer requested: caller asked for a transfer",
        "warm transfer: dialing (rings 1 s)",
        "warm transfer: answered",
        "warm transfer: briefed",
        "warm transfer: connected",
        f"warm transfer: completed (talked {dial.dial_call_duration_s} s)",
    ]
    assert {r["target"] for r in stored["routing"][1:]} == {"+155****9999"}
    assert stored["record"]["status"] == "ended"
    assert stored["record"]["end_reason"] == "transfer: connected (warm)"
    events = await stack.store.events(result.call_sid)
    (event,) = [e for e in events if e["kind"] == "transfer_briefing"]
    assert event["text"] == dial.heard[0]
    assert len(stack.engine.sessions) == 1  # nobody came back to the agent


@pytest.mark.parametrize(
    ("rule", "status", "step"),
    [
        (TargetRule("no-answer"), "no-answer", "no answer"),
        (TargetRule("busy"), "busy", "busy"),
        (TargetRule("decline", ring_ms=200), "completed", "declined (pressed 9)"),
    ],
    ids=["no-answer", "busy", "declined"],
)
async def test_warm_transfer_nobody_takes_comes_back_to_the_agent(
    make_stack: Any, rule: TargetRule, status: str, step: str
) -> None:
    stack: Stack = await make_stack(scenario=_scenario(), **FAST)
    result = await _call(stack, rule)
    dial = result.dial
    assert dial is not None and not dial.connected
    assert dial.dial_call_status == status
    stored = await read_call(stack.store, result.call_sid)
    first_user = next(t["text"] for t in stored["transcript"] if t["role"] == "user")
    if rule.kind == "decline":
        _assert_briefed(result, first_user)
        assert dial.pressed == "9"
    else:
        assert dial.heard == []  # nobody answered: nobody was briefed
    # The <Dial action> answered with a new stream for the same call.
    back = result.after_transfer
    assert back is not None and back.call_sid == result.call_sid
    assert back.stream_url == result.stream_url and back.token and back.token != result.token
    assert back.errors == [] and back.ended_by == "caller_hangup"
    assert back.agent_audio_bytes_received > 0 and back.played_bytes_total > 0
    # The new Realtime session got the conversation so far, then said what happened.
    _, second = stack.engine.sessions
    replayed = [(i.type, i.role, i.content_type) for i in second.items[:5]]
    assert replayed == [
        ("message", "assistant", "text"),  # the greeting, as heard
        ("message", "user", "input_text"),  # the caller's turn, as transcribed
        ("function_call", None, None),
        ("function_call_output", None, None),
        ("message", "assistant", "text"),  # the hold line
    ]
    user, call, output = second.items[1:4]
    assert user.text == first_user
    assert (call.name, call.call_id) == ("transfer_call", output.call_id)
    assert '"mode":"warm"' in output.output.replace(" ", "")
    assert second.items[4].text == HOLD
    said = [t["text"] for t in stored["transcript"] if t["role"] == "assistant"]
    assert said[-1] == LINES[rule.kind] and HOLD in said
    offsets = [t["offset_ms"] for t in stored["transcript"]]
    assert offsets[-1] > max(offsets[:-1])  # one timeline across both streams
    reasons = _reasons(stored)
    expected = ["number_match", "warm transfer requested: caller asked for a transfer"]
    expected += ["warm transfer: dialing (rings 1 s)"]
    if rule.kind == "decline":
        expected += ["warm transfer: answered", "warm transfer: briefed"]
    expected += [f"warm transfer: {step}", "warm transfer: returned to agent"]
    assert reasons == expected
    assert stored["record"]["status"] == "ended"
    assert stored["record"]["end_reason"] != "transfer: connected (warm)"
