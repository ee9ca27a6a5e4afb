"""The carrier simulator's rules file, and the call summary's text (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard_sim.simulator import SimulatorError, default_rules, is_loopback, load_rules
from switchboard_sim.summary import render_text, render_tool_call, reply_after, tool_offset_ms

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_rules_load() -> None:
    rules = load_rules(EXAMPLES / "simulator.yaml")
    assert rules.next_for("+15555550188").kind == "voicemail"
    dana = rules.next_for("+15555550123")
    assert (dana.kind, dana.ring_ms, dana.media) == ("person", 2000, True)
    assert dana.script is not None and dana.script.realtime_pace  # a person on a real line
    assert rules.next_for("+15555559999").kind == "person"  # the default


def test_rules_per_call_keypad_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "default: {kind: no-answer, ring_ms: 40}\n"
        "numbers:\n"
        "  '+1 555 555 0001': [busy, {kind: person, keypad: '12', keypad_at_ms: 500}]\n"
        "  '+15555550002': {kind: person, media: false, hold_ms: 50}\n"
    )
    rules = load_rules(path)
    assert [rules.next_for("+15555550001").kind for _ in range(3)] == ["busy", "person", "person"]
    rules = load_rules(path)
    rules.next_for("+15555550001")
    keypad = rules.next_for("+15555550001").script
    assert keypad is not None and keypad.dtmf == [(500, "1"), (600, "2"), (700, "#")]
    quick = rules.next_for("+15555550002")
    assert (quick.media, quick.hold_ms, quick.script) == (False, 50, None)
    assert (rules.default.kind, rules.default.ring_ms) == ("no-answer", 40)
    assert default_rules().default.kind == "person"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("default: dancing\n", "default"),
        ("numbers: {'+15555550001': {kind: person, colour: red}}\n", "colour"),
        ("numbers: {'555': busy}\n", "555"),
        ("numbers: {'+15555550001': []}\n", "at least one"),
        ("numbers: {'+15555550001': {kind: person, say: [no-such-file]}}\n", "no-such-file"),
        ("numbers: [\n", "cannot read"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(SimulatorError) as err:
        load_rules(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("api.twilio.com", "10.0.0.1", "", None))


def test_tool_call_line_shows_arguments_result_and_the_spoken_reply() -> None:
    record = {"created_at_ms": "1000000"}
    transcript = [
        {"role": "assistant", "text": "How can I help?", "offset_ms": 100},
        {"role": "user", "text": "Where is order 1042?", "offset_ms": 4500},
        # spoken while the tool ran, stored after it: not the answer
        {"role": "assistant", "text": "Let me look.", "offset_ms": 7000},
        {"role": "assistant", "text": "Order 1042 has shipped.", "offset_ms": 9000},
    ]
    call = {
        "name": "get_order_status",
        "arguments": '{"order_id":"1042"}',
        "result": {"order_id": "1042", "status": "shipped"},
        "error": None,
        "duration_ms": 3.2,
        "at_ms": 1_008_200,
    }
    offset = tool_offset_ms(call, record)
    assert offset == 8200
    assert reply_after(offset, transcript) == "Order 1042 has shipped."
    assert reply_after(20_000, transcript) is None
    assert tool_offset_ms(call, {}) is None and reply_after(None, transcript) is None
    summary_call = {**call, "offset_ms": offset, "reply": reply_after(offset, transcript)}
    assert render_tool_call(summary_call) == [
        '  get_order_status({"order_id": "1042"}) → {"order_id": "1042", "status": "shipped"}'
        "  (3 ms)",
        '    agent replied: "Order 1042 has shipped."',
    ]
    failed = render_tool_call({**call, "result": {}, "error": "timeout", "reply": None})
    assert failed == ['  get_order_status({"order_id": "1042"}) → error timeout  (3 ms)']

    summary = {
        "call_sid": "CA1",
        "flow": "support",
        "ended_by": "hangup",
        "end_reason": "hangup",
        "duration_ms": 12_000,
        "transcript": [{**e, "interrupted": False} for e in transcript],
        "tool_calls": [summary_call],
        "routing": [],
        "turn_latency_ms": [],
        "transferred_to": None,
        "agent_wav": None,
        "errors": [],
    }
    text = render_text(summary).splitlines()
    start = text.index("transcript:") + 1
    timeline = text[start : text.index("", start)]
    assert [line.split()[0] for line in timeline] == ["0.1s", "4.5s", "7.0s", "8.2s", "9.0s"]
    assert timeline[3] == '     8.2s    tool: get_order_status({"order_id": "1042"})'
    assert timeline[1] == "     4.5s  caller: Where is order 1042?"


def test_the_summary_says_what_a_warm_transfer_target_heard() -> None:
    from switchboard_sim.calls import SimulatedCallResult
    from switchboard_sim.dial import DialRecord, TargetRule
    from switchboard_sim.summary import build_summary

    result = SimulatedCallResult(call_sid="CA1", stream_sid="MZ1", ended_by="transfer")
    result.dial = DialRecord("+15550109999", "Number", TargetRule("decline"), 20)
    result.dial.heard = ["Transferred call from Dana.", "Press 9 to decline."]
    result.dial.pressed, result.dial.dial_call_status = "9", "completed"
    result.after_transfer = SimulatedCallResult(call_sid="CA1", stream_sid="MZ2")
    stored = {"record": {"flow": "support"}, "transcript": [], "tool_calls": [], "routing": []}
    summary = build_summary(result, stored, None)
    assert summary["warm_transfer"] == {
        "target": "+15550109999",
        "rule": "decline",
        "dial_call_status": "completed",
        "target_heard": ["Transferred call from Dana.", "Press 9 to decline."],
        "pressed": "9",
        "connected": False,
        "back_to_agent": True,
    }
    text = render_text(summary).splitlines()
    assert "warm transfer (decline): DialCallStatus=completed connected=False" in " ".join(text)
    assert '  the target heard: "Transferred call from Dana."' in text
