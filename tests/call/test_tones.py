"""send_dtmf on a fake clock: tones go to the carrier as media + a mark, the function call
is answered when the mark comes back."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from app.call import actions as act
from app.call.session import CallSession
from app.realtime import events as ev
from flows import FlowCatalog
from switchboard_sim.dtmf import detect

SID = "MZ" + "1" * 32


def make_session() -> CallSession:
    base = FlowCatalog.load().default
    flow = base.model_copy(update={"tools": [*base.tools, "send_dtmf"]})
    s = CallSession(
        call_sid="CA" + "0" * 32, stream_sid=SID, flow=flow, beta=False, now_ms=lambda: 0
    )
    s.start([])
    s.on_realtime(ev.SessionUpdated(session={}))
    s.on_realtime(ev.ResponseDone("", "completed", None, [], None))
    return s


def press(s: CallSession, digits: str, call_id: str = "c1") -> list[act.Action]:
    fc = {
        "type": "function_call",
        "call_id": call_id,
        "name": "send_dtmf",
        "arguments": orjson.dumps({"digits": digits}).decode(),
    }
    out = s.on_realtime(ev.ResponseCreated("r" + call_id))
    return out + s.on_realtime(ev.ResponseDone("r" + call_id, "completed", None, [fc], None))


def carrier(out: list[act.Action]) -> list[dict[str, Any]]:
    return [orjson.loads(a.text) for a in out if isinstance(a, act.SendCarrier)]


def outputs(out: list[act.Action]) -> list[dict[str, Any]]:
    return [
        orjson.loads(m["item"]["output"])
        for m in (orjson.loads(a.text) for a in out if isinstance(a, act.SendRealtime))
        if m["type"] == "conversation.item.create"
    ]


def test_tones_play_then_the_call_is_answered() -> None:
    s = make_session()
    out = press(s, "1w2#")
    assert not any(isinstance(a, act.RunTools) for a in out)
    msgs = carrier(out)
    assert [m["event"] for m in msgs][-1] == "mark" and {m["streamSid"] for m in msgs} == {SID}
    audio = b"".join(base64.b64decode(m["media"]["payload"]) for m in msgs[:-1])
    assert detect(audio) == "12#"
    assert all(len(base64.b64decode(m["media"]["payload"])) <= 8000 for m in msgs[:-1])
    assert outputs(out) == []  # not yet: the carrier has not played them
    out = s.on_mark(msgs[-1]["mark"]["name"])
    assert outputs(out) == [{"ok": True, "sent": "1w2#", "duration_ms": 1100}]
    assert (
        orjson.loads([a for a in out if isinstance(a, act.SendRealtime)][-1].text)["type"]
        == "response.create"
    )
    stored = [a.op for a in out if isinstance(a, act.Store) and isinstance(a.op, act.StoreToolCall)]
    assert stored[0].name == "send_dtmf" and stored[0].error is None


def test_a_second_sequence_while_one_plays_is_refused() -> None:
    s = make_session()
    press(s, "1")
    out = press(s, "2", call_id="c2")
    assert carrier(out) == []
    assert outputs(out)[0]["error"]["code"] == "refused"
