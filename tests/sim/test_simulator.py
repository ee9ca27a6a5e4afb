"""The carrier simulator's rules file, and the call summary's text (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.sim.simulator import SimulatorError, default_rules, is_loopback, load_rules
from app.sim.summary import render_tool_call, reply_after

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
    transcript = [
        {"id": "1000-0", "role": "user", "text": "Where is order 1042?"},
        {"id": "1500-0", "role": "assistant", "text": "Let me look."},
        {"id": "2100-0", "role": "assistant", "text": "Order 1042 has shipped."},
    ]
    call = {
        "id": "2000-0",
        "name": "get_order_status",
        "arguments": '{"order_id":"1042"}',
        "result": {"order_id": "1042", "status": "shipped"},
        "error": None,
        "duration_ms": 3.2,
    }
    assert reply_after(call, transcript) == "Order 1042 has shipped."
    assert reply_after({**call, "id": "3000-0"}, transcript) is None
    lines = render_tool_call({**call, "reply": reply_after(call, transcript)})
    assert lines == [
        '  get_order_status({"order_id": "1042"}) → {"order_id": "1042", "status": "shipped"}'
        "  (3 ms)",
        '    agent replied: "Order 1042 has shipped."',
    ]
    failed = render_tool_call({**call, "result": {}, "error": "timeout", "reply": None})
    assert failed == ['  get_order_status({"order_id": "1042"}) → error timeout  (3 ms)']
