"""SCRIPTED scenario loading and the scripted responder's reply rules (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from switchboard_engine import ReplyRequest, Scenario, ScriptedResponder
from switchboard_engine.responder import ReplyInput

TOOLS = ("get_order_status", "end_call")


def _request(inp: ReplyInput, instructions: str = "", tool_choice: str = "auto") -> ReplyRequest:
    return ReplyRequest(instructions, inp, TOOLS, tool_choice)


async def test_demo_scenario_script() -> None:
    responder = ScriptedResponder(Scenario.load())
    assert await responder.transcribe(b"", 0) == "What's the status of order 1042?"
    reply = await responder.respond(_request(ReplyInput("audio", turn_index=0)))
    assert reply.say is None and reply.function_call is not None
    assert reply.function_call.name == "get_order_status"
    assert reply.function_call.arguments == {"order_id": "1042"}
    reply = await responder.respond(_request(ReplyInput("audio", turn_index=1)))
    assert reply.say == "Thanks for calling Acme. Goodbye!"
    assert reply.function_call is not None and reply.function_call.name == "end_call"
    reply = await responder.respond(_request(ReplyInput("audio", turn_index=7)))
    assert reply.say == "Sorry, could you say that again?" and reply.function_call is None


async def test_tool_choice_none_and_unknown_tool_fall_back() -> None:
    responder = ScriptedResponder(Scenario.load())
    reply = await responder.respond(_request(ReplyInput("audio", turn_index=0), tool_choice="none"))
    assert reply.function_call is None and reply.say == "Sorry, could you say that again?"


async def test_say_exactly_overrides_script() -> None:
    responder = ScriptedResponder(Scenario.load())
    reply = await responder.respond(
        _request(ReplyInput("audio", turn_index=0), 'Say exactly this and nothing else: "Hi."')
    )
    assert reply.say == "Hi." and reply.function_call is None and not reply.answers_input


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            {"order_id": "7", "status": "lost", "delivery_date": "never"},
            "Order 7 is lost. It should arrive on never.",
        ),
        ({"order_id": "7"}, "Here is what I found: order id is 7."),
        ({"error": {"message": "order not found"}}, "order not found"),
    ],
)
def test_after_tool(output: dict[str, object], expected: str) -> None:
    responder = ScriptedResponder(Scenario.load())
    assert expected in responder.after_tool("get_order_status", json.dumps(output))


def test_scenario_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("turns:\n  - say: hi\n")
    with pytest.raises(pydantic.ValidationError):
        Scenario.load(bad)
