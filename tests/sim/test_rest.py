"""The fake Twilio REST API, driven by the official ``twilio`` client over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import Response
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from app.settings import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN
from switchboard_sim.calls import CallScript, SimulatedCallResult
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.rest import TwilioRestFake
from tests.sim.peer import TwilioPeer

SID = DEV_TWILIO_ACCOUNT_SID
TOKEN = DEV_TWILIO_AUTH_TOKEN


@dataclass
class Rig:
    peer: TwilioPeer
    sim: CarrierSimulator
    fake: TwilioRestFake

    def client(self, token: str = TOKEN) -> Client:
        client = Client(SID, token)
        client.api.base_url = self.fake.base_url
        return client

    async def live_call(self) -> tuple[str, asyncio.Task[SimulatedCallResult]]:
        """Start a call that stays up; return its CallSid once media is flowing."""
        task = asyncio.create_task(
            self.sim.place_inbound_call(CallScript(frame_interval_ms=5, max_duration_s=30))
        )
        async with asyncio.timeout(5):
            while True:
                if self.peer.calls and self.peer.calls[-1].events("media"):
                    break
                await asyncio.sleep(0.005)  # polling the peer's record of messages
        (sid,) = self.sim.live_calls
        return sid, task


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with TwilioPeer(SID, TOKEN) as peer:
        sim = CarrierSimulator(peer.base_url, peer.base_url, SID, TOKEN)
        fake = TwilioRestFake(sim, SID, TOKEN)
        await fake.start()
        try:
            yield Rig(peer, sim, fake)
        finally:
            await fake.stop()


async def test_hang_up_through_the_official_client(rig: Rig) -> None:
    sid, task = await rig.live_call()
    client = rig.client()
    call = await asyncio.to_thread(lambda: client.calls(sid).update(status="completed"))
    assert call.sid == sid and call.status == "completed"
    assert call.account_sid == SID and call.direction == "inbound"
    result = await asyncio.wait_for(task, 5)
    assert result.ended_by == "hangup"
    assert result.ws_close_code == 1000
    peer_call = rig.peer.calls[0]
    (stop,) = peer_call.events("stop")
    assert stop["stop"] == {"accountSid": SID, "callSid": sid}
    params, ok = rig.peer.status_callbacks[-1]
    assert ok and params["CallStatus"] == "completed" and params["CallSid"] == sid
    assert sid not in rig.sim.live_calls
    # The finished call can still be fetched; a redirect is refused like Twilio does.
    fetched = await asyncio.to_thread(lambda: client.calls(sid).fetch())
    assert fetched.status == "completed" and fetched.end_time is not None
    with pytest.raises(TwilioRestException) as exc:
        await asyncio.to_thread(
            lambda: client.calls(sid).update(twiml="<Response><Dial>+15550001111</Dial></Response>")
        )
    assert exc.value.status == 400 and exc.value.code == 21220


async def test_transfer_with_dial_twiml(rig: Rig) -> None:
    sid, task = await rig.live_call()
    client = rig.client()
    twiml = "<Response><Dial>+15551234567</Dial></Response>"
    call = await asyncio.to_thread(lambda: client.calls(sid).update(twiml=twiml))
    assert call.status == "in-progress"
    result = await asyncio.wait_for(task, 5)
    assert result.ended_by == "transfer"
    assert result.transferred_to == "+15551234567"
    assert len(rig.peer.calls[0].events("stop")) == 1
    assert rig.fake.requests[-1].params == {"Twiml": twiml}


async def test_redirect_url_follows_dial(rig: Rig) -> None:
    sid, task = await rig.live_call()

    # The redirect URL is fetched by the simulator: serve it from the peer's app.
    async def transfer_route() -> Response:
        return Response("<Response><Dial><Number>+15557654321</Number></Dial></Response>")

    rig.peer.app.add_api_route("/twilio/transfer", transfer_route, methods=["POST"])
    client = rig.client()
    url = rig.peer.base_url + "/twilio/transfer"
    await asyncio.to_thread(lambda: client.calls(sid).update(url=url))
    result = await asyncio.wait_for(task, 5)
    assert result.ended_by == "redirect"
    assert result.redirect_url == url
    assert result.transferred_to == "+15557654321"


async def test_wrong_credentials_get_401(rig: Rig) -> None:
    sid, task = await rig.live_call()
    with pytest.raises(TwilioRestException) as exc:
        await asyncio.to_thread(lambda: rig.client("wrong").calls(sid).update(status="completed"))
    assert exc.value.status == 401 and exc.value.code == 20003
    assert sid in rig.sim.live_calls  # untouched
    rig.sim.live_calls[sid].request_end("hangup")
    assert (await asyncio.wait_for(task, 5)).ended_by == "hangup"


async def test_unknown_call_gets_404(rig: Rig) -> None:
    client = rig.client()
    with pytest.raises(TwilioRestException) as exc:
        await asyncio.to_thread(lambda: client.calls("CA" + "f" * 32).update(status="completed"))
    assert exc.value.status == 404 and exc.value.code == 20404


async def test_raw_401_body_is_twilio_shaped(rig: Rig) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        resp = await http.post(
            f"{rig.fake.base_url}/2010-04-01/Accounts/{SID}/Calls/CA{'0' * 32}.json",
            data={"Status": "completed"},
        )
    assert resp.status_code == 401
    body = resp.json()
    assert body["code"] == 20003 and body["status"] == 401 and body["message"] == "Authenticate"
    assert "more_info" in body
