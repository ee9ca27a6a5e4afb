"""The warm transfer webhooks on the real stack: signed like every Twilio webhook, a
forged one stores nothing, a retried ``<Dial action>`` gets the first answer, and a lost
hand-off never leaves the caller in silence."""

from __future__ import annotations

import httpx

from app.call.conversation import Entry
from app.store.handoffs import Handoff, Handoffs
from app.store.tokens import StreamContext
from switchboard_sim.calls import new_call_sid
from tests.e2e.conftest import Stack
from tests.security.carrier import CALLER, SUPPORT, answered, post_signed, stream_of, voice_params

HUMAN = "+15550109999"


async def _handed_off(stack: Stack) -> str:
    """A call answered by the voice webhook, then left for a warm transfer."""
    sid, _, _ = await answered(stack)
    context = StreamContext(sid, "support", "inbound", CALLER, SUPPORT)
    handoffs = Handoffs.of(stack.store, 60)
    entries = (Entry("user", "I need a person"),)
    await handoffs.put(Handoff(context, HUMAN, "asked", "Briefing text.", "9", entries))
    return sid


def _action(sid: str, status: str) -> dict[str, str]:
    return voice_params(
        sid, CallStatus="in-progress", DialCallStatus=status, DialCallSid=new_call_sid()
    )


async def test_forged_warm_transfer_webhooks_are_refused_and_store_nothing(stack: Stack) -> None:
    sid = await _handed_off(stack)
    before = await stack.store.routing(sid)
    leg = voice_params(new_call_sid(), ParentCallSid=sid, Direction="outbound-dial")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        for path, params in (
            ("/twilio/whisper", leg),
            ("/twilio/whisper-key", {**leg, "Digits": "9"}),
            ("/twilio/dial-action", _action(sid, "no-answer")),
        ):
            r = await http.post(path, data=params, headers={"X-Twilio-Signature": "forged"})
            assert r.status_code == 403, path
    assert await stack.store.routing(sid) == before
    state = await Handoffs.of(stack.store, 60).get(sid)
    assert state is not None and state.steps == frozenset() and state.outcome == ""


async def test_retried_dial_action_gets_the_same_stream(stack: Stack) -> None:
    sid = await _handed_off(stack)
    first = await post_signed(stack, "/twilio/dial-action", _action(sid, "busy"))
    again = await post_signed(stack, "/twilio/dial-action", _action(sid, "busy"))
    assert first.status_code == again.status_code == 200
    url, params = stream_of(first.text)
    assert url == stack.settings.media_stream_url and list(params) == ["token"]
    assert stream_of(again.text) == (url, params)
    reasons = [r["reason"] for r in await stack.store.routing(sid)]
    assert reasons.count("warm transfer: busy") == 1
    assert reasons.count("warm transfer: returned to agent") == 1


async def test_dial_action_without_a_hand_off_apologises(stack: Stack) -> None:
    sid, _, _ = await answered(stack)
    r = await post_signed(stack, "/twilio/dial-action", _action(sid, "no-answer"))
    assert r.status_code == 200
    assert "<Say>" in r.text and "<Hangup" in r.text  # spoken, never silence
    missing = await post_signed(stack, "/twilio/dial-action", voice_params(sid))
    assert missing.status_code == 400  # no DialCallStatus
