"""send_dtmf through the simulator: the tones the agent sends are what the far end's
receiver (Goertzel, switchboard_sim.dtmf) hears."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from switchboard_engine import Scenario
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _flows(tmp_path: Path) -> Path:
    for path in FLOWS.glob("*.yaml"):
        text = path.read_text()
        if path.name == "support.yaml":
            text = text.replace("end_call]", "end_call, send_dtmf]", 1)
        (tmp_path / path.name).write_text(text)
    return tmp_path


async def test_agent_presses_keys_the_far_end_hears(make_stack: Any, tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "name": "ivr",
            "greeting": "Hello.",
            "turns": [
                {
                    "transcript": "The caller entered 9 on the keypad.",
                    "function_call": {"name": "send_dtmf", "arguments": {"digits": "1w204#"}},
                }
            ],
            "after_tool": {"send_dtmf": "I pressed the keys."},
        }
    )
    stack: Stack = await make_stack(scenario=scenario, flows_dir=_flows(tmp_path))
    script = CallScript(
        from_number="+15555550123",
        to_number="+15550100000",
        dtmf=[(1500, "9"), (1600, "#")],
        hangup_after_ms=2000,
        max_duration_s=30,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.errors == []
    assert result.dtmf_heard() == "1204#"
    stored = await read_call(stack.store, result.call_sid)
    (tool,) = [t for t in stored["tool_calls"] if t["name"] == "send_dtmf"]
    assert tool["error"] is None and tool["result"]["sent"] == "1w204#"
    said = [e["text"] for e in stored["transcript"] if e["role"] == "assistant"]
    assert "I pressed the keys." in said  # answered once the tones had played
    events = await stack.store.events(result.call_sid)
    assert [(e["kind"], e["digits"]) for e in events if e["kind"] == "dtmf_sent"] == [
        ("dtmf_sent", "1w204#")
    ]
