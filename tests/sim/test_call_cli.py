"""run_call: bundled WAVs in, agent audio WAV out, REST fake up for the call's duration."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import httpx

from app.audio import read_wav_as_ulaw
from app.settings import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN
from switchboard_sim.assets import recording_path, recording_ulaw
from switchboard_sim.call_cli import run_call
from tests.sim.peer import PeerCall, TwilioPeer

SID, TOKEN = DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN


async def test_run_call_saves_agent_audio(tmp_path: Path) -> None:
    greeting = b"\x20" * 4000  # 500 ms

    async def greet_then_hang_up_via_rest(call: PeerCall) -> None:
        await call.send_media(greeting)
        await call.send_mark("greeting")
        await call.wait_until(lambda: call.mark_echo_time("greeting") is not None, 5)
        assert call.start is not None
        # the caller speaks after gap_ms (700 ms); hang up through the REST fake once done
        n = (500 + 700) // 20 + len(recording_ulaw("goodbye")) // 160 + 5
        await call.wait_until(lambda: len(call.events("media")) >= n, 20)
        async with httpx.AsyncClient(trust_env=False) as http:
            sid = call.start["start"]["callSid"]
            resp = await http.post(
                f"http://127.0.0.1:{rest_port}/2010-04-01/Accounts/{SID}/Calls/{sid}.json",
                data={"Status": "completed"},
                auth=(SID, TOKEN),
            )
            assert resp.status_code == 200, resp.text
        await call.disconnected.wait()

    # a fixed free port for the REST fake, known to the peer's behaviour
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    rest_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()

    out = tmp_path / "heard.wav"
    async with TwilioPeer(SID, TOKEN, greet_then_hang_up_via_rest) as peer:
        result = await run_call(
            server_base_url=peer.base_url,
            public_base_url=peer.base_url,
            account_sid=SID,
            auth_token=TOKEN,
            rest_host="127.0.0.1",
            rest_port=rest_port,
            to="+15005550001",
            from_="+15005550006",
            wavs=[recording_path("goodbye")],
            out=out,
            dtmf=[(100, "1")],
            max_duration_s=20,
        )
    assert not peer.behaviour_errors
    assert result.ended_by == "hangup", result.errors
    assert result.dtmf_sent == ["1"]
    assert result.marks_sent_back == ["greeting"]
    (utt,) = result.utterances
    assert utt.end_ms is not None and utt.frames == -(-len(recording_ulaw("goodbye")) // 160)
    with wave.open(str(out), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() == len(result.agent_audio)
    heard = read_wav_as_ulaw(out)
    assert heard.count(b"\x20") == len(greeting)
