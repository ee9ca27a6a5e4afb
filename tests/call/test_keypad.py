"""Secure keypad capture (``collect_digits``) on a fake clock: the digits reach only the
``SecureDigits`` action — no Realtime event, transcript entry, stored tool call or log."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from app.call import actions as act
from app.call.keypad import KeypadCapture, KeypadSpec, luhn_ok, spoken_digits
from app.call.limits import KEYPAD_TIMER
from app.call.session import CallSession
from app.realtime import events as ev
from flows import CollectDigitsSettings, FlowCatalog

SID = "MZ" + "1" * 32
CARD = "4111111111111111"  # passes Luhn
BAD_CARD = "4111111111111112"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_session(**rules: Any) -> tuple[CallSession, list[act.Action]]:
    base = FlowCatalog.load().default
    flow = base.model_copy(
        update={
            "tools": [*base.tools, "collect_digits"],
            "collect_digits": CollectDigitsSettings(**rules),
        }
    )
    s = CallSession(call_sid="CA" + "0" * 32, stream_sid=SID, flow=flow, beta=False, now_ms=Clock())
    log: list[act.Action] = []
    log += s.start([])
    log += s.on_realtime(ev.SessionUpdated(session={}))
    log += s.on_realtime(ev.ResponseDone("", "completed", None, [], None))  # greeting done
    return s, log


def call_tool(s: CallSession, args: dict[str, Any], call_id: str = "c1") -> list[act.Action]:
    rid = "r" + call_id
    out = s.on_realtime(ev.ResponseCreated(rid))
    fc = {
        "type": "function_call",
        "call_id": call_id,
        "name": "collect_digits",
        "arguments": orjson.dumps(args).decode(),
    }
    out += s.on_realtime(ev.ResponseDone(rid, "completed", None, [fc], None))
    # The prompt (or, refused, the next turn) is spoken.
    out += s.on_realtime(ev.ResponseCreated("p" + call_id))
    return out + s.on_realtime(ev.ResponseDone("p" + call_id, "completed", None, [], None))


def type_digits(s: CallSession, digits: str) -> list[act.Action]:
    out: list[act.Action] = []
    for d in digits:
        out += s.on_dtmf(d)
    return out


def leaks(actions: list[act.Action], secret: str) -> list[act.Action]:
    """Every action other than SecureDigits whose content shows ``secret`` (or most of it)."""
    probe = secret[:-4]  # the last four may be shown; nothing before them
    return [a for a in actions if not isinstance(a, act.SecureDigits) and probe in repr(a)]


def outputs(actions: list[act.Action]) -> list[dict[str, Any]]:
    msgs = [orjson.loads(a.text) for a in actions if isinstance(a, act.SendRealtime)]
    return [
        orjson.loads(m["item"]["output"])
        for m in msgs
        if m["type"] == "conversation.item.create" and m["item"]["type"] == "function_call_output"
    ]


def test_luhn() -> None:
    assert luhn_ok(CARD) and luhn_ok("79927398713")
    assert not luhn_ok(BAD_CARD) and not luhn_ok("1") and not luhn_ok("12a4")


def test_card_number_reaches_only_the_digit_sink() -> None:
    s, log = make_session(check="luhn")
    start = call_tool(s, {"purpose": "card_number"})
    log += start
    prompt = [orjson.loads(a.text) for a in start if isinstance(a, act.SendRealtime)]
    assert prompt[-1]["type"] == "response.create"
    assert "keypad" in prompt[-1]["response"]["instructions"]
    assert not any(isinstance(a, act.RunTools) for a in start)  # never the registry
    # The caller's audio (keypad tones included) is withheld from the model meanwhile.
    assert s.on_carrier_media(base64.b64encode(b"\xff" * 160).decode()) is None
    out = type_digits(s, CARD + "#")
    log += out
    (secure,) = [a for a in out if isinstance(a, act.SecureDigits)]
    assert secure.digits == CARD and secure.purpose == "card_number"
    assert CARD not in repr(secure)
    (result,) = outputs(out)
    assert result["collected"] is True and result["last4"] == "1111" and result["digits"] == 16
    # Once over, the model is asked to go on and the caller's audio flows again.
    assert (
        orjson.loads([a for a in out if isinstance(a, act.SendRealtime)][-1].text)["type"]
        == "response.create"
    )
    assert s.on_carrier_media("AAAA") is not None
    log += s.end("carrier stop")
    assert leaks(log, CARD) == []
    # No keypad transcript entry at all, and the tool call is stored without digits.
    assert not [
        a
        for a in log
        if isinstance(a, act.Store)
        and isinstance(a.op, act.StoreTranscript)
        and "keypad" in a.op.text
    ]
    events = [a.op for a in log if isinstance(a, act.Store) and isinstance(a.op, act.StoreEvent)]
    assert [e.fields["state"] for e in events if e.kind == "keypad_capture"] == [
        "started",
        "collected",
    ]


def test_bad_luhn_is_asked_again_then_fails() -> None:
    s, log = make_session(check="luhn", retries=1)
    log += call_tool(s, {"purpose": "card_number"})
    out = type_digits(s, BAD_CARD + "#")
    log += out
    assert outputs(out) == []  # not over: asked again
    again = [orjson.loads(a.text) for a in out if isinstance(a, act.SendRealtime)]
    assert "again" in again[-1]["response"]["instructions"]
    out = type_digits(s, BAD_CARD + "#")
    log += out
    (result,) = outputs(out)
    assert result == {
        "ok": False,
        "collected": False,
        "purpose": "card_number",
        "attempts": 2,
        "error": {"code": "invalid", "message": "the digits entered were not valid"},
    }
    assert not any(isinstance(a, act.SecureDigits) for a in log)
    assert leaks(log, BAD_CARD) == []
    stored = [a.op for a in log if isinstance(a, act.Store) and isinstance(a.op, act.StoreToolCall)]
    assert stored[-1].error == "invalid" and stored[-1].name == "collect_digits"


def test_timeouts_first_digit_and_between_digits() -> None:
    s, _ = make_session(retries=0, min_digits=4)
    out = call_tool(s, {"purpose": "pin", "max_digits": 4})
    assert [
        a.delay_ms for a in out if isinstance(a, act.StartTimer) and a.name == KEYPAD_TIMER
    ] == [15_000]
    (result,) = outputs(s.on_timer(KEYPAD_TIMER))  # nothing entered
    assert result["error"]["code"] == "timeout"
    assert s.capture is None
    # A PIN ends at max_digits, no '#' needed; an entry in progress is submitted on the
    # inter-digit timeout (as <Gather> does) and judged then.
    s.on_realtime(ev.ResponseDone("", "completed", None, [], None))
    call_tool(s, {"purpose": "pin", "max_digits": 4}, call_id="c2")
    out = type_digits(s, "12")
    assert [a.delay_ms for a in out if isinstance(a, act.StartTimer)][-1] == 5000
    (result,) = outputs(s.on_timer(KEYPAD_TIMER))
    assert result["error"]["code"] == "too_short"
    s.on_realtime(ev.ResponseDone("", "completed", None, [], None))
    call_tool(s, {"purpose": "pin", "max_digits": 4}, call_id="c3")
    (result,) = outputs(type_digits(s, "2468"))
    assert result["collected"] is True and result["last4"] == "2468"


def test_pattern_and_second_capture_refused() -> None:
    spec = KeypadSpec("acct", "p", "r", max_digits=8, pattern=r"9\d+", retries=0)
    c = KeypadCapture("c", spec)
    for d in "1234#":
        c.on_digit(d)
    assert c.output()["error"]["code"] == "invalid"  # type: ignore[index]
    s, _ = make_session()
    call_tool(s, {"purpose": "pin"})
    out = call_tool(s, {"purpose": "pin"}, call_id="c9")
    (result,) = outputs(out)
    assert result["error"]["code"] == "refused"
    assert s.capture is not None and s.capture.call_id == "c1"


def test_dtmf_outside_a_capture_still_reaches_the_model() -> None:
    s, _ = make_session()
    out = type_digits(s, "1042#")
    msgs = [orjson.loads(a.text) for a in out if isinstance(a, act.SendRealtime)]
    assert msgs[0]["item"]["content"][0]["text"] == "The caller entered 1042 on the keypad."


@pytest.mark.parametrize("bad", [{"pattern": "("}, {"finish_on_key": "5"}])
def test_flow_settings_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CollectDigitsSettings(**bad)


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("four two, double seven", "4277"),
        ("one oh four two", "1042"),
        ("4,242.", "4242"),  # a recogniser's numerals
        ("My PIN is 42-42", "4242"),
        ("Five, six, seven, eight.", "5678"),
        ("triple five one", "5551"),
        ("ten forty-two", "1042"),
        ("four hundred and five", "405"),
        ("four hundred twelve", "412"),
        ("two hundred", "200"),
        ("nine nine nine pound", "999#"),
        ("the number for my card is four one", "41"),  # "for" is not a four
        ("I don't know it", ""),
    ],
)
def test_spoken_digits_as_callers_say_them(said: str, digits: str) -> None:
    assert spoken_digits(said) == digits


def test_spoken_digits_go_to_a_listener_and_the_capture_only() -> None:
    s, log = make_session(spoken=True, min_digits=4, max_digits=8)
    start = call_tool(s, {"purpose": "pin"})
    log += start
    assert [a for a in start if isinstance(a, act.OpenListener)]  # a listen-only session
    assert s.on_carrier_media("AAAA") is None  # the agent's session hears none of it
    log += s.on_spoken("um, let me see")  # no digit: nothing happens
    assert s.capture is not None and s.capture.entered == 0
    out = s.on_spoken("four two, oh seven nine one three five")
    log += out
    (secure,) = [a for a in out if isinstance(a, act.SecureDigits)]
    assert secure.digits == "42079135"
    assert [a for a in out if isinstance(a, act.CloseListener)]
    (result,) = outputs(out)
    assert result["collected"] is True and result["last4"] == "9135"
    log += s.end("carrier stop")
    assert leaks(log, "42079135") == []
    assert not [a for a in log if "four two" in repr(a)]  # what was said goes nowhere


def test_spoken_input_only_where_the_flow_allows_it() -> None:
    s, _ = make_session(min_digits=4)
    start = call_tool(s, {"purpose": "pin"})
    assert not [a for a in start if isinstance(a, act.OpenListener)]
    assert s.on_spoken("four two oh seven") == [] and s.capture is not None
    out = s.end("carrier stop")
    assert not [a for a in out if isinstance(a, act.CloseListener)]
