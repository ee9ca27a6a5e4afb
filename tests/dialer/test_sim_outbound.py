"""The simulator's outbound Calls API, driven by the official ``twilio`` client (through
``CallPlacer``): validation, Twilio's callback order, signatures, AMD, repeats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI, Request, Response

from app.carrier.twiml import SignatureChecker
from app.dialer.placer import CallPlacer, OutboundCall
from app.errors import DialFailed
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.outbound import Callee
from switchboard_sim.rest import TwilioRestFake
from switchboard_sim.serve import LoopbackServer

SID = "AC" + "5" * 32
TOKEN = "outbound-sim-token"


@dataclass
class Receiver:
    """A fake Switchboard: records every signed callback; answers the voice webhook."""

    server: LoopbackServer
    calls: list[tuple[str, dict[str, str], bool]] = field(default_factory=list)
    twiml: str = "<Response><Hangup/></Response>"

    @property
    def base(self) -> str:
        return self.server.base_url


@dataclass
class Rig:
    receiver: Receiver
    sim: CarrierSimulator
    rest: TwilioRestFake
    placer: CallPlacer

    def call(self, to: str, **kw: object) -> OutboundCall:
        base = self.receiver.base
        values: dict[str, object] = {
            "to": to,
            "from_": "+15550100000",
            "url": f"{base}/voice?attempt=att_1",
            "status_callback": f"{base}/status?attempt=att_1",
            "amd_callback": f"{base}/amd?attempt=att_1",
            "ring_timeout_s": 30,
            "time_limit_s": 60,
        }
        values.update(kw)
        return OutboundCall(**values)  # type: ignore[arg-type]

    def received(self, path: str) -> list[dict[str, str]]:
        return [p for kind, p, _ in self.receiver.calls if kind == path]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    app = FastAPI()
    checker = SignatureChecker(TOKEN)
    receiver = Receiver(LoopbackServer(app))

    async def record(request: Request) -> Response:
        params = {k: str(v) for k, v in (await request.form()).items()}
        url = f"{receiver.base}{request.url.path}?{request.url.query}"
        ok = checker.valid(url, params, request.headers.get("X-Twilio-Signature"))
        receiver.calls.append((request.url.path, params, ok))
        if request.url.path == "/voice":
            return Response(receiver.twiml, media_type="application/xml")
        return Response(status_code=204)

    for path in ("/voice", "/status", "/amd"):
        app.add_api_route(path, record, methods=["POST"])
    await receiver.server.start()
    sim = CarrierSimulator(receiver.base, receiver.base, SID, TOKEN)
    rest = TwilioRestFake(sim, SID, TOKEN)
    await rest.start()
    placer = CallPlacer(SID, TOKEN, rest.base_url, timeout_s=5)
    try:
        yield Rig(receiver, sim, rest, placer)
    finally:
        await rest.stop()
        await receiver.server.stop()


async def test_busy_no_answer_and_failed_follow_twilios_callbacks(rig: Rig) -> None:
    rules = rig.rest.outbound.rules
    rules.set("+15555550001", Callee("busy", ring_ms=10))
    rules.set("+15555550002", Callee("no-answer", ring_ms=30))
    rules.set("+15555550003", Callee("failed"))
    sids = [
        await rig.placer.create(rig.call("+15555550001")),
        await rig.placer.create(rig.call("+15555550002")),
        await rig.placer.create(rig.call("+15555550003")),
    ]
    await rig.rest.outbound.wait_idle(15)
    statuses: dict[str, list[str]] = {}
    for p in rig.received("/status"):
        statuses.setdefault(p["CallSid"], []).append(p["CallStatus"])
    assert statuses[sids[0]] == ["initiated", "ringing", "busy"]
    assert statuses[sids[1]] == ["initiated", "ringing", "no-answer"]
    assert statuses[sids[2]] == ["initiated", "failed"]
    assert all(ok for _, _, ok in rig.receiver.calls)  # every callback signed correctly
    final = next(p for p in rig.received("/status") if p["CallStatus"] == "busy")
    assert final["SipResponseCode"] == "486" and final["Direction"] == "outbound-api"
    assert [p["SequenceNumber"] for p in rig.received("/status") if p["CallSid"] == sids[0]] == [
        "0",
        "1",
        "2",
    ]
    fetched = await rig.placer.fetch(sids[0])
    assert fetched is not None and fetched.status == "busy"
    assert (await rig.placer.fetch("CA" + "0" * 32)) is None
    (record,) = [r for r in rig.rest.outbound.log if r.sid == sids[0]]
    assert record.attempt == "att_1" and set(record.events) == {
        "initiated",
        "ringing",
        "answered",
        "completed",
    }


async def test_a_person_answers_then_amd_says_human_before_completed(rig: Rig) -> None:
    rig.receiver.twiml = (
        '<Response><Connect><Stream url="ws://127.0.0.1:9/media"/></Connect></Response>'
    )
    rig.rest.outbound.rules.set("+15555550004", Callee("person", media=False, hold_ms=150))
    rig.rest.outbound.callback_repeats = 2
    sid = await rig.placer.create(rig.call("+15555550004"))
    await rig.rest.outbound.wait_idle(10)
    order = [
        (kind, p.get("CallStatus") or p.get("AnsweredBy"))
        for kind, p, _ in rig.receiver.calls
        if p["CallSid"] == sid
    ]
    assert order == [
        ("/status", "initiated"),
        ("/status", "initiated"),
        ("/status", "ringing"),
        ("/status", "ringing"),
        ("/status", "in-progress"),
        ("/status", "in-progress"),
        ("/voice", "in-progress"),  # the webhook is fetched once
        ("/amd", "human"),
        ("/amd", "human"),
        ("/status", "completed"),
        ("/status", "completed"),
    ]
    completed = rig.received("/status")[-1]
    assert completed["AnsweredBy"] == "human" and completed["CallDuration"] == "0"
    result = rig.rest.outbound.results[sid]
    assert result.final_status == "completed" and result.errors == []


async def test_the_rest_api_validates_like_twilio(rig: Rig) -> None:
    rig.rest.outbound.rules.set("+15555550009", Callee("rejected"))
    with pytest.raises(DialFailed) as refused:
        await rig.placer.create(rig.call("+15555550009"))
    assert refused.value.definite and refused.value.code == 21211
    with pytest.raises(DialFailed) as bad_from:
        await rig.placer.create(rig.call("+15555550008", from_="0000"))
    assert bad_from.value.code == 21212
    assert rig.rest.outbound.log == type(rig.rest.outbound.log)(maxlen=rig.rest.outbound.log.maxlen)
    # A call hung up while ringing ends canceled.
    rig.rest.outbound.rules.set("+15555550007", Callee("person", ring_ms=5000))
    sid = await rig.placer.create(rig.call("+15555550007"))
    await rig.placer.hangup(sid)
    await rig.rest.outbound.wait_idle(10)
    assert rig.received("/status")[-1]["CallStatus"] == "canceled"
