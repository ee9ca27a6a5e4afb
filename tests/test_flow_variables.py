"""``{{name}}`` placeholders in flow text (flows/variables.py)."""

from __future__ import annotations

from flows import FLOWS_DIR, FlowCatalog
from flows.variables import fill, fill_flow, flow_placeholders, placeholders


def test_fill_replaces_known_and_blanks_unknown_names() -> None:
    text = "Hi {{ first_name }}, about {{appointment}} {{ Not_A_Name }}."
    assert placeholders(text) == {"first_name", "appointment"}
    assert fill(text, {"first_name": "Dana"}) == "Hi Dana, about  {{ Not_A_Name }}."
    assert placeholders(None) == set()


def test_fill_flow_fills_instructions_and_greeting_of_a_copy() -> None:
    flow = FlowCatalog.load(FLOWS_DIR).get("reminder")
    assert flow is not None
    names = flow_placeholders(flow)
    assert names, "the reminder flow uses contact variables"
    filled = fill_flow(flow, dict.fromkeys(names, "X"))
    assert not flow_placeholders(filled)
    assert flow_placeholders(flow) == names  # the catalog's flow is untouched
