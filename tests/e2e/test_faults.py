"""Bad input and faults: nothing stored for forged webhooks, streams closed before any
Realtime session on bad tokens, malformed frames counted while the call goes on, Realtime
errors logged, a Realtime service gone for good handing the call to the fallback with its
record intact."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from switchboard_sim.calls import CallScript, new_call_sid
from switchboard_sim.summary import read_call
from tests.e2e.conftest import ACCOUNT_SID, Stack, eventually, order_status_call

CALLER = "+15555550123"
SUPPORT = "+15550100000"


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _voice_params(call_sid: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": ACCOUNT_SID,
        "From": CALLER,
        "To": SUPPORT,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }


async def _keys_of(stack: Stack, call_sid: str) -> list[str]:
    return [
        k async for k in stack.redis.scan_iter(match=f"{stack.settings.redis_prefix}*{call_sid}*")
    ]


@pytest.mark.parametrize("signature", [None, "d3Jvbmcgc2lnbmF0dXJl"], ids=["unsigned", "forged"])
async def test_unsigned_or_forged_webhook_is_403_and_stores_nothing(
    stack: Stack, signature: str | None
) -> None:
    sid = new_call_sid()
    headers = {"X-Twilio-Signature": signature} if signature else {}
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        voice = await http.post("/twilio/voice", data=_voice_params(sid), headers=headers)
        status = await http.post(
            "/twilio/status",
            data={**_voice_params(sid), "CallStatus": "completed"},
            headers=headers,
        )
    assert voice.status_code == 403 and status.status_code == 403
    assert await _keys_of(stack, sid) == []


async def test_signed_but_malformed_webhook_is_400(stack: Stack) -> None:
    params = _voice_params("not-a-call-sid")
    url = stack.settings.public_url("/twilio/voice")
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post(
            "/twilio/voice",
            data=params,
            headers={"X-Twilio-Signature": stack.sim.sign(url, params)},
        )
    assert r.status_code == 400


async def test_status_callback_for_unknown_call_is_2xx(stack: Stack) -> None:
    params = {**_voice_params(new_call_sid()), "CallStatus": "completed"}
    url = stack.settings.public_url("/twilio/status")
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post(
            "/twilio/status",
            data=params,
            headers={"X-Twilio-Signature": stack.sim.sign(url, params)},
        )
    assert r.status_code == 204  # answered, so Twilio does not retry
    assert await _keys_of(stack, params["CallSid"]) == []


async def test_bad_token_closes_the_stream_before_any_realtime_session(stack: Stack) -> None:
    result = await stack.sim.place_inbound_call(
        CallScript(from_number=CALLER, to_number=SUPPORT, override_token="forged", max_duration_s=5)
    )
    assert result.ws_close_code == 1008
    assert stack.engine.sessions == []
    record = (await read_call(stack.store, result.call_sid, wait_s=0.2))["record"]
    assert record["status"] != "ended"  # nothing was bridged


async def test_replayed_token_is_refused(stack: Stack) -> None:
    first = await stack.sim.place_inbound_call(
        CallScript(from_number=CALLER, to_number=SUPPORT, hangup_after_ms=500, max_duration_s=10)
    )
    assert first.ws_close_code != 1008 and len(stack.engine.sessions) == 1
    replay = await stack.sim.place_inbound_call(
        CallScript(from_number=CALLER, to_number=SUPPORT, reuse_token_of=first, max_duration_s=5)
    )
    assert replay.ws_close_code == 1008
    assert len(stack.engine.sessions) == 1  # no second Realtime session opened


async def test_malformed_frames_are_counted_and_the_call_goes_on(stack: Stack) -> None:
    before = _metric("switchboard_malformed_messages_total", leg="carrier")
    unknown_before = _metric("switchboard_unknown_events_total", leg="carrier")
    garbage: list[tuple[int, str | bytes]] = [
        (300, "this is not json"),
        (320, '{"event":"media","streamSid":"MZ1","media":{"payload":"%%%not-base64"}}'),
        (340, '{"event":"media","media":{"payload":"AAAA","timestamp":"soon"}}'),
        (360, '{"event":"sparkle","sparkle":{}}'),
        (380, '{"event":"mark"}'),
        (400, '{"event":"media","media":{"payload":"' + "A" * 90_000 + '"}}'),
        (420, b"\x00\x01binary"),
    ]
    script = order_status_call(extra_raw_messages=garbage)
    result = await stack.sim.place_inbound_call(script)
    assert result.ended_by == "hangup"
    stored = await read_call(stack.store, result.call_sid)
    assert [t["name"] for t in stored["tool_calls"]] == ["get_order_status", "end_call"]
    assert _metric("switchboard_malformed_messages_total", leg="carrier") - before == 6
    assert _metric("switchboard_unknown_events_total", leg="carrier") - unknown_before == 1


async def _live_call(stack: Stack, script: CallScript) -> tuple[asyncio.Task[Any], Any]:
    task = asyncio.create_task(stack.sim.place_inbound_call(script))
    await eventually(lambda: bool(stack.services.live.calls))
    (bridge,) = stack.services.live.calls.values()
    await eventually(lambda: bridge.rt is not None and bridge.session.configured)
    return task, bridge


async def test_realtime_error_event_is_logged_and_the_call_goes_on(stack: Stack) -> None:
    before = _metric("switchboard_realtime_errors_total")
    script = order_status_call()
    task, bridge = await _live_call(stack, script)
    await bridge.rt.send('{"type":"no.such.event","event_id":"evt_test"}')  # engine answers `error`
    result = await task
    assert result.ended_by == "hangup"
    assert _metric("switchboard_realtime_errors_total") - before >= 1
    stored = await read_call(stack.store, result.call_sid)
    assert [t["name"] for t in stored["tool_calls"]] == ["get_order_status", "end_call"]


async def test_realtime_drop_for_good_falls_back_and_keeps_the_record(stack: Stack) -> None:
    script = CallScript(from_number=CALLER, to_number=SUPPORT, caller_audio=[], max_duration_s=20)
    task, bridge = await _live_call(stack, script)
    # Wait until the greeting has been fully sent.
    await eventually(lambda: any(i.audio_done for i in bridge.session.items.values()))
    await stack.engine.stop()  # the Realtime service goes away mid-call, for good
    result = await task
    assert result.ended_by == "hangup" and result.said  # the fallback's apology, then hang-up
    stored = await read_call(stack.store, result.call_sid)
    record = stored["record"]
    assert record["status"] == "ended" and "realtime unavailable" in record["end_reason"]
    assert [e["role"] for e in stored["transcript"]] == ["assistant"]  # the greeting survived
