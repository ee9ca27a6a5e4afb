"""Warm transfer, the pure parts: its TwiML, the briefing, the outcome of a ``<Dial>``,
the hand-off record, the transfer policy for SIP targets, and the session's decisions
(on a fake clock)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import orjson
import pytest

from app.call import actions as act
from app.call.conversation import Entry
from app.call.session import ACTION_TIMER, CallSession
from app.carrier import warm
from app.carrier.transfers import TransferPolicy
from app.errors import ToolRefused
from app.realtime import events as ev
from app.store.handoffs import Handoff
from app.store.tokens import StreamContext
from flows import FlowCatalog
from tests.call.conftest import Clock
from tools.base import ToolOutcome

SID = "MZ" + "1" * 32
HUMAN = "+15550109999"


def _session(clock: Clock, **flow_changes: object) -> CallSession:
    flow = FlowCatalog.load().default
    if flow_changes:
        flow = flow.model_copy(update=flow_changes)
    s = CallSession(
        call_sid="CA" + "0" * 32,
        stream_sid=SID,
        flow=flow,
        beta=False,
        now_ms=clock,
        caller="+15555550123",
    )
    s.start([])
    s.on_realtime(ev.SessionUpdated(session={}))
    return s


# --- TwiML ----------------------------------------------------------------------------------


def test_warm_dial_rings_the_number_with_the_whisper_and_the_action() -> None:
    twiml = warm.warm_dial(
        HUMAN, action_url="https://sb/twilio/dial-action", whisper_url="https://sb/w", timeout_s=7
    )
    dial = ET.fromstring(twiml).find("./Dial")
    assert dial is not None
    assert dial.attrib == {
        "action": "https://sb/twilio/dial-action",
        "method": "POST",
        "timeout": "7",
    }
    (number,) = list(dial)
    assert (number.tag, number.text, number.get("url")) == ("Number", HUMAN, "https://sb/w")


def test_warm_dial_uses_sip_for_a_sip_target() -> None:
    twiml = warm.warm_dial("sip:desk@pbx.example.com", action_url="a", whisper_url="w", timeout_s=5)
    dial = ET.fromstring(twiml).find("./Dial")
    assert dial is not None
    (noun,) = list(dial)
    assert (noun.tag, noun.text, noun.get("url")) == ("Sip", "sip:desk@pbx.example.com", "w")


def test_whisper_speaks_the_briefing_inside_a_one_digit_gather() -> None:
    twiml = warm.whisper("Caller wants a refund.", "*", action_url="https://sb/k", timeout_s=4)
    gather = ET.fromstring(twiml).find("./Gather")
    assert gather is not None
    assert gather.get("numDigits") == "1" and gather.get("timeout") == "4"
    assert gather.get("actionOnEmptyResult") == "true" and gather.get("action") == "https://sb/k"
    says = [s.text for s in gather.findall("./Say")]
    assert says == [
        "Caller wants a refund.",
        "Press star to decline, or stay on the line to be connected.",
    ]
    assert ET.fromstring(warm.hangup()).find("./Hangup") is not None
    assert list(ET.fromstring(warm.connect_now())) == []


@pytest.mark.parametrize(
    ("status", "declined", "connected", "outcome"),
    [
        ("no-answer", False, False, "no_answer"),
        ("busy", False, False, "busy"),
        ("failed", False, False, "failed"),
        ("canceled", False, False, "failed"),
        ("completed", True, False, "declined"),  # the whisper's <Hangup> ended the leg
        ("no-answer", True, False, "declined"),
        ("completed", False, True, "connected"),
        ("answered", False, True, "connected"),
        ("completed", False, False, "no_answer"),  # answered, hung up during the briefing
    ],
)
def test_outcome_of_a_dial(status: str, declined: bool, connected: bool, outcome: str) -> None:
    assert warm.outcome_of(status, declined=declined, connected=connected) == outcome


# --- the briefing ---------------------------------------------------------------------------


def _entries() -> list[Entry]:
    lookup = orjson.dumps({"found": True, "customer": {"name": "Dana Reyes"}}).decode()
    order = orjson.dumps({"order_id": "1042", "status": "shipped"}).decode()
    return [
        Entry("assistant", "Thanks for calling Acme."),
        Entry("user", "Hi, my order ten forty-two never came and I want a refund."),
        Entry(
            "function_call",
            call_id="c1",
            name="lookup_customer",
            arguments='{"phone":"+15555550123"}',
        ),
        Entry("function_call_output", lookup, call_id="c1"),
        Entry(
            "function_call", call_id="c2", name="get_order_status", arguments='{"order_id":"1042"}'
        ),
        Entry("function_call_output", order, call_id="c2"),
        Entry("user", "Can I talk to a person?"),
        Entry("function_call", call_id="c3", name="transfer_call", arguments='{"target":"human"}'),
        Entry("function_call_output", '{"ok":true}', call_id="c3"),
    ]


def test_briefing_says_who_what_and_what_was_done() -> None:
    text = warm.briefing(_entries(), caller="+15555550123", reason="caller asked for a person")
    assert text == (
        "Transferred call from Dana Reyes. Reason: caller asked for a person. They said: "
        '"Hi, my order ten forty-two never came and I want a refund." Done so far: lookup '
        "customer; get order status 1042: shipped."
    )
    assert text == warm.briefing(
        _entries(), caller="+15555550123", reason="caller asked for a person"
    )


def test_briefing_says_the_callers_words_once() -> None:
    said = [Entry("user", "Can I talk to a person, please?")]
    text = warm.briefing(
        said, caller="+15555550123", reason="caller said: Can I talk to a person, please?"
    )
    assert text == (
        "Transferred call from a caller from a number ending 0123. "
        "Reason: caller said: Can I talk to a person, please?"
    )


def test_briefing_without_a_name_or_tools_and_its_bound() -> None:
    text = warm.briefing([Entry("user", "word " * 200)], caller="+15555550123", reason="x" * 300)
    assert text.startswith("Transferred call from a caller from a number ending 0123.")
    assert "+1555" not in text  # numbers never spoken in full
    assert len(text) <= warm.MAX_BRIEFING_CHARS
    assert warm.briefing([], caller="", reason="") == "Transferred call from a caller."


def test_handoff_record_round_trips() -> None:
    context = StreamContext("CA" + "1" * 32, "support", "inbound", "+15555550123", "+15550100000")
    h = Handoff(context, HUMAN, "asked", "Brief.", "9", tuple(_entries()), 5000, 1_700_000_000_000)
    back = Handoff.loads(h.dumps())
    assert back == h and back.context.handoff is False
    assert StreamContext.loads(StreamContext("CA1", "f", handoff=True).dumps()).handoff


def test_sip_target_only_as_a_flow_target() -> None:
    policy = TransferPolicy()
    sip = "sip:desk@pbx.example.com"
    assert policy.refusal(sip, [sip]) is None
    assert policy.refusal(sip, [HUMAN]) is not None
    assert policy.destination_refusal(sip) is None  # named by the flow: no prefix rules


# --- the session ----------------------------------------------------------------------------


def _transfer_via_tool(s: CallSession, args: str) -> list[act.Action]:
    s.on_realtime(ev.ResponseCreated("r1"))
    calls = [{"type": "function_call", "call_id": "c1", "name": "transfer_call", "arguments": args}]
    s.on_realtime(ev.ResponseDone("r1", "completed", None, calls, None))
    s.request_transfer(HUMAN, "caller asked for a person", "warm")
    s.record_routing(HUMAN, "caller asked for a person")
    return s.on_tool_results([ToolOutcome("transfer_call", "c1", args, {"ok": True}, None, 3.0)])


def test_warm_transfer_carries_the_briefing_and_the_conversation(clock: Clock) -> None:
    s = _session(clock)
    s.conversation.user("I want a person")
    out = _transfer_via_tool(s, '{"target":"human","mode":"warm"}')
    routing = [a.op for a in out if isinstance(a, act.Store) and isinstance(a.op, act.StoreRouting)]
    assert [r.reason for r in routing] == ["warm transfer requested: caller asked for a person"]
    clock.t = 4000
    (transfer,) = [a for a in s.on_timer(ACTION_TIMER) if isinstance(a, act.Transfer)]
    assert (transfer.mode, transfer.to_number, transfer.decline_key) == ("warm", HUMAN, "9")
    assert transfer.briefing.startswith("Transferred call from a caller from a number ending 0123.")
    assert 'They said: "I want a person"' in transfer.briefing
    kinds = [e.kind for e in transfer.entries]
    assert kinds == ["user", "function_call", "function_call_output"]
    assert transfer.offset_ms == 4000 and transfer.ring_timeout_s == 0  # the Settings default


def test_warm_request_is_a_routing_decision_and_a_cold_one_unchanged(clock: Clock) -> None:
    s = _session(clock)
    s.request_transfer(HUMAN, "asked", "warm")
    s.record_routing(HUMAN, "asked")
    (op,) = [a.op for a in s.take_actions() if isinstance(a, act.Store)]
    assert isinstance(op, act.StoreRouting) and op.reason == "warm transfer requested: asked"
    cold = _session(clock)
    cold.request_transfer(HUMAN, "asked")
    cold.record_routing(HUMAN, "asked")
    (op,) = [a.op for a in cold.take_actions() if isinstance(a, act.Store)]
    assert isinstance(op, act.StoreRouting) and op.reason == "asked"
    assert isinstance(cold.pending_action, act.Transfer) and cold.pending_action.mode == "cold"


def test_flow_default_mode_and_unknown_mode(clock: Clock) -> None:
    flow = FlowCatalog.load().default
    s = _session(clock, transfer=flow.transfer.model_copy(update={"mode": "warm"}))
    s.request_transfer(HUMAN, "asked")
    assert isinstance(s.pending_action, act.Transfer) and s.pending_action.mode == "warm"
    with pytest.raises(ToolRefused):
        _session(clock).request_transfer(HUMAN, "asked", "lukewarm")


def test_operator_warm_transfer_says_the_hold_line_first(clock: Clock) -> None:
    s = _session(clock)
    s.on_realtime(ev.ResponseCreated("g"))
    s.on_realtime(ev.ResponseDone("g", "completed", None, [], None))  # the greeting is done
    out = s.operator_transfer(HUMAN, "operator", "warm")
    assert not any(isinstance(a, act.Transfer) for a in out)
    (create,) = [orjson.loads(a.text) for a in out if isinstance(a, act.SendRealtime)]
    assert s.flow.transfer.hold_line in create["response"]["instructions"]
    s.on_realtime(ev.ResponseCreated("r2"))
    out = s.on_realtime(ev.ResponseDone("r2", "completed", None, [], None))
    assert [a.mode for a in out if isinstance(a, act.Transfer)] == ["warm"]  # nothing to play
    cold = _session(clock)
    assert [a.mode for a in cold.operator_transfer(HUMAN, "op") if isinstance(a, act.Transfer)] == [
        "cold"
    ]


def test_resumed_session_replays_and_says_what_happened(clock: Clock) -> None:
    flow = FlowCatalog.load().default
    s = CallSession(call_sid="CA" + "0" * 32, stream_sid=SID, flow=flow, beta=False, now_ms=clock)
    s.resume(
        [Entry("user", "I want a person"), Entry("assistant", "Please hold.")], "Nobody.", 9000
    )
    update, *replay = [orjson.loads(a.text) for a in s.start([]) if isinstance(a, act.SendRealtime)]
    assert update["type"] == "session.update"
    assert [r["item"]["role"] for r in replay] == ["user", "assistant"]
    (create,) = [
        orjson.loads(a.text)
        for a in s.on_realtime(ev.SessionUpdated(session={}))
        if isinstance(a, act.SendRealtime)
    ]
    assert "Nobody." in create["response"]["instructions"]
    assert flow.greeting and flow.greeting not in create["response"]["instructions"]
    clock.t = 500
    assert s.elapsed_ms() == 9500  # the call's one timeline


def test_the_registry_keeps_a_calls_next_stream() -> None:
    from app.call.registry import LiveCalls

    class Bridged:
        call_sid = "CA" + "2" * 32

    first, second, calls = Bridged(), Bridged(), LiveCalls()
    calls.add(first)  # type: ignore[arg-type]
    calls.add(second)  # type: ignore[arg-type]  # back from a warm transfer
    calls.remove(Bridged.call_sid, first)  # type: ignore[arg-type]  # the first stream ends late
    assert calls.calls[Bridged.call_sid] is second
    calls.remove(Bridged.call_sid, second)  # type: ignore[arg-type]
    assert not calls.calls and calls.idle.is_set()
