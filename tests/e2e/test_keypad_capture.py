"""Secure keypad capture through the simulator and the local engine: the card number
typed on the keypad reaches the digit sink only — no Realtime client event, transcript
entry, stored tool call or event, and no log line holds it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from switchboard_engine import Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack

CALLER = "+15555550123"
SUPPORT = "+15550100000"
CARD = "4111111111111111"
BAD_CARD = "4111111111111112"
FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _flows(tmp_path: Path, retries: int, rules: str = "  check: luhn\n") -> Path:
    """The shipped flows, with ``collect_digits`` offered by support under ``rules``
    (YAML lines; default: Luhn-checked)."""
    for path in FLOWS.glob("*.yaml"):
        text = path.read_text()
        if path.name == "support.yaml":
            text = text.replace("end_call]", "end_call, collect_digits]", 1)
            text += f"collect_digits:\n{rules}  retries: {retries}\n"
        (tmp_path / path.name).write_text(text)
    return tmp_path


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "keypad",
            "greeting": "Hello.",
            "turns": [
                {
                    "transcript": "The caller entered 9 on the keypad.",
                    "function_call": {
                        "name": "collect_digits",
                        "arguments": {"purpose": "card_number"},
                    },
                }
            ],
            "after_tool": {"collect_digits": "Thanks, the card ending {last4} is saved."},
        }
    )


def _script(card: str) -> CallScript:
    # "9#" asks for the capture (the scripted turn); the card follows once it runs.
    keys = [(1500, "9"), (1600, "#")]
    keys += [(7000 + 100 * i, d) for i, d in enumerate(card + "#")]
    return CallScript(
        from_number=CALLER, to_number=SUPPORT, dtmf=keys, hangup_after_ms=5000, max_duration_s=40
    )


def _assert_nowhere(secret: str, stack: Stack, stored: dict[str, Any], logs: str) -> None:
    probe = secret[:12]  # all but the last four, which the model may learn
    (session,) = stack.engine.sessions
    assert probe not in orjson.dumps(session.events_received).decode()
    assert probe not in orjson.dumps(stored, default=str).decode()
    assert probe not in logs


async def test_card_number_is_taken_on_the_keypad_unseen(
    make_stack: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sunk: list[tuple[str, str, str]] = []

    async def sink(call_sid: str, purpose: str, digits: str) -> None:
        sunk.append((call_sid, purpose, digits))

    stack: Stack = await make_stack(scenario=_scenario(), flows_dir=_flows(tmp_path, 1))
    stack.services.digit_sink = sink
    result = await stack.sim.place_inbound_call(_script(CARD))
    assert result.errors == []
    stored = await read_call(stack.store, result.call_sid)
    stored["events"] = await stack.store.events(result.call_sid)
    assert sunk == [(result.call_sid, "card_number", CARD)]
    (tool,) = [t for t in stored["tool_calls"] if t["name"] == "collect_digits"]
    assert tool["error"] is None
    assert tool["result"] == {
        "ok": True,
        "collected": True,
        "purpose": "card_number",
        "digits": 16,
        "last4": "1111",
        "attempts": 1,
    }
    said = [e["text"] for e in stored["transcript"] if e["role"] == "assistant"]
    assert "Thanks, the card ending 1111 is saved." in said
    states = [e.get("state") for e in stored["events"] if e.get("kind") == "keypad_capture"]
    assert states == ["started", "collected"]
    assert [e["text"] for e in stored["transcript"] if e["role"] == "user"] == ["[keypad] 9"]
    _assert_nowhere(CARD, stack, stored, caplog.text)


async def test_bad_card_number_fails_the_luhn_check(
    make_stack: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack: Stack = await make_stack(scenario=_scenario(), flows_dir=_flows(tmp_path, 0))
    result = await stack.sim.place_inbound_call(_script(BAD_CARD))
    stored = await read_call(stack.store, result.call_sid)
    stored["events"] = await stack.store.events(result.call_sid)
    (tool,) = [t for t in stored["tool_calls"] if t["name"] == "collect_digits"]
    assert tool["error"] == "invalid"
    states = [e.get("state") for e in stored["events"] if e.get("kind") == "keypad_capture"]
    assert states == ["started", "failed"]
    _assert_nowhere(BAD_CARD, stack, stored, caplog.text)


PIN = "42079135"


def _spoken_scenario() -> Scenario:
    # SCRIPTED engine: a connection's first committed caller turn is transcribed as turn 0.
    # The agent's session never commits one (it hears no caller audio during the capture),
    # so only the listen-only session's turn reads "four two oh seven ...".
    return Scenario.model_validate(
        {
            "name": "spoken-keypad",
            "greeting": "Hello.",
            "turns": [
                {"transcript": "Four two, oh seven, nine one three five."},
                {
                    "transcript": "The caller entered 9 on the keypad.",
                    "function_call": {"name": "collect_digits", "arguments": {"purpose": "pin"}},
                },
            ],
            "after_tool": {"collect_digits": "Thanks, the PIN ending {last4} is set."},
        }
    )


async def test_spoken_digits_reach_the_capture_through_a_listen_only_session(
    make_stack: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sunk: list[str] = []

    async def sink(call_sid: str, purpose: str, digits: str) -> None:
        sunk.append(digits)

    stack: Stack = await make_stack(
        scenario=_spoken_scenario(),
        flows_dir=_flows(tmp_path, 0, "  spoken: true\n  min_digits: 8\n"),
    )
    stack.services.digit_sink = sink
    script = CallScript(
        from_number=CALLER,
        to_number=SUPPORT,
        dtmf=[(4000, "9"), (4400, "#")],  # asks for the capture (the scripted turn 1)
        # A silent first "utterance"; the second (speech) follows the capture's prompt.
        caller_audio=[b"\xff" * 2400, recording_ulaw("order_status")],
        hangup_after_ms=4000,
        # The call's timeline at 4x speed (times above are call time), with room for a
        # loaded machine's slower turns.
        frame_interval_ms=5,
        first_wait_ms=12_000,
        max_duration_s=120,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.errors == []
    stored = await read_call(stack.store, result.call_sid)
    stored["events"] = await stack.store.events(result.call_sid)
    assert sunk == [PIN]
    agent, listener = stack.engine.sessions
    # The listener heard the caller and was never asked for a response.
    sent = [e.get("type") for e in listener.events_received]
    assert "input_audio_buffer.append" in sent and "response.create" not in sent
    (tool,) = [t for t in stored["tool_calls"] if t["name"] == "collect_digits"]
    assert tool["result"]["collected"] is True and tool["result"]["last4"] == "9135"
    said = [e["text"] for e in stored["transcript"] if e["role"] == "assistant"]
    assert "Thanks, the PIN ending 9135 is set." in said
    heard = orjson.dumps(agent.events_received).decode()
    heard += orjson.dumps(stored, default=str).decode()
    for secret in (PIN[:5], "four two", "Four two"):  # all but the last four, or the words
        assert secret not in heard and secret not in caplog.text
