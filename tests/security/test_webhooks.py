"""Carrier-facing hardening on the real stack: webhooks are idempotent per CallSid, status
callbacks apply in order, the call's context is the server's, the upgrade is signed."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.carrier.transfers import PolicedControl
from app.errors import ToolRefused
from switchboard_sim.calls import CallScript, new_call_sid
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack, StackFactory, eventually
from tests.helpers import wait_until
from tests.security.carrier import (
    CALLER,
    SUPPORT,
    answered,
    open_stream,
    post_signed,
    stop_stream,
    stream_of,
    voice_params,
)


async def _token_keys(stack: Stack) -> list[str]:
    pattern = f"{stack.settings.redis_prefix}token:*"
    return [k async for k in stack.redis.scan_iter(match=pattern)]


async def _live_bridge(stack: Stack, call_sid: str) -> object:
    await eventually(lambda: call_sid in stack.services.live.calls)
    return stack.services.live.calls[call_sid]


async def test_repeat_before_the_stream_gets_the_same_answer(stack: Stack) -> None:
    sid, url, params = await answered(stack)
    again = await post_signed(stack, "/twilio/voice", voice_params(sid))
    assert again.status_code == 200
    assert stream_of(again.text) == (url, params)
    assert list(params) == ["token"]  # nothing else about the call goes to the carrier
    assert len(await _token_keys(stack)) == 1
    assert len(await stack.store.routing(sid)) == 1


async def test_replay_after_the_call_started_mints_nothing(stack: Stack) -> None:
    call = asyncio.create_task(
        stack.sim.place_inbound_call(
            CallScript(from_number=CALLER, to_number=SUPPORT, max_duration_s=20)
        )
    )
    await eventually(lambda: bool(stack.services.live.calls))
    sid = next(iter(stack.services.live.calls))

    async def in_progress() -> bool:  # the bridge marks the record live once bridged
        record = await stack.store.get_call(sid)
        return record is not None and record.get("status") == "in-progress"

    await wait_until(in_progress, 10, what="the call record in-progress")
    before = await stack.store.get_call(sid)
    replay = await post_signed(stack, "/twilio/voice", voice_params(sid))
    assert replay.status_code == 409
    assert "<Stream" not in replay.text and "token" not in replay.text
    assert await _token_keys(stack) == []
    after = await stack.store.get_call(sid)
    assert before is not None and after is not None
    for name in ("created_at_ms", "status", "flow", "from_masked", "direction"):
        assert after[name] == before[name], name  # not reset (usage may have grown since)
    assert after["total_tokens"] >= before["total_tokens"]
    assert len(await stack.store.routing(sid)) == 1
    stack.sim.live_calls[sid].request_end("hangup")
    await asyncio.wait_for(call, 20)


async def test_replay_after_the_call_ended_changes_nothing(stack: Stack) -> None:
    result = await stack.sim.place_inbound_call(
        CallScript(from_number=CALLER, to_number=SUPPORT, hangup_after_ms=300, max_duration_s=15)
    )
    sid = result.call_sid
    ended = (await read_call(stack.store, sid, wait_s=5))["record"]
    assert ended["status"] == "ended"
    sessions = len(stack.engine.sessions)
    replay = await post_signed(stack, "/twilio/voice", voice_params(sid))
    assert replay.status_code == 409
    assert await _token_keys(stack) == []
    after = await stack.store.get_call(sid)
    assert after == ended  # status, created_at_ms and the token counts are as they were
    assert len(await stack.store.routing(sid)) == 1
    assert len(stack.engine.sessions) == sessions


async def test_custom_parameters_cannot_change_the_flow_or_the_caller(stack: Stack) -> None:
    sid, url, params = await answered(stack)
    forged = {
        **params,
        "flow": "reminder",
        "from": "+15550001111",
        "to": "+15550002222",
        "direction": "outbound",
        "var_first_name": "Mallory",
    }
    ws = await open_stream(stack, url, sid, forged)
    try:
        bridge = await _live_bridge(stack, sid)
        info = bridge.tool_ctx.call  # type: ignore[attr-defined]
        assert (info.flow, info.from_number, info.to_number) == ("support", CALLER, SUPPORT)
        assert info.direction == "inbound" and info.variables == {}
        assert bridge.session.flow.name == "support"  # type: ignore[attr-defined]
        # The model's transfer_call goes through the transfer policy on this call.
        control = bridge.tool_ctx.control  # type: ignore[attr-defined]
        assert isinstance(control, PolicedControl)
        with pytest.raises(ToolRefused, match="refused"):
            control.request_transfer("+19005550100", "the caller insisted")
    finally:
        await stop_stream(ws, sid)


async def test_status_callbacks_apply_in_order(stack: Stack) -> None:
    sid, _, _ = await answered(stack)

    async def status(value: str, seq: str | None = None, **extra: str) -> None:
        params = voice_params(sid, CallStatus=value, **extra)
        if seq is not None:
            params["SequenceNumber"] = seq
        r = await post_signed(stack, "/twilio/status", params)
        assert r.status_code == 204, r.text

    async def carrier_status() -> str | None:
        record = await stack.store.get_call(sid)
        assert record is not None
        return record.get("carrier_status")

    await status("in-progress", "2")
    await status("ringing", "1")  # late: an older sequence number
    assert await carrier_status() == "in-progress"
    await status("completed", "3")
    await status("in-progress", "4")  # a terminal status never regresses
    assert await carrier_status() == "completed"
    # Without sequence numbers, Timestamp orders them.
    sid, _, _ = await answered(stack)
    await status("in-progress", Timestamp="Tue, 01 Jul 2025 10:00:05 +0000")
    await status("ringing", Timestamp="Tue, 01 Jul 2025 10:00:01 +0000")
    assert await carrier_status() == "in-progress"
    # A callback for a call never seen creates nothing.
    ghost = new_call_sid()
    r = await post_signed(stack, "/twilio/status", voice_params(ghost, CallStatus="completed"))
    assert r.status_code == 204 and await stack.store.get_call(ghost) is None


@pytest.mark.parametrize("media", ["listener", "asgi"])
@pytest.mark.parametrize("signature", [None, "d3Jvbmcgc2lnbmF0dXJl"], ids=["unsigned", "forged"])
async def test_unsigned_or_forged_upgrade_is_refused_before_accepting(
    make_stack: StackFactory, media: str, signature: str | None
) -> None:
    stack: Stack = await make_stack(media=media)
    sid, url, params = await answered(stack)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, additional_headers=headers, open_timeout=5)
    assert refused.value.response.status_code == 403
    assert stack.engine.sessions == []
    # The token was not spent: a signed upgrade still works.
    ws = await open_stream(stack, url, sid, params)
    try:
        await _live_bridge(stack, sid)
    finally:
        await stop_stream(ws, sid)
