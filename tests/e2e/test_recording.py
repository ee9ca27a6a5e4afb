"""Call recording offline: consent first, both tracks in a stereo WAV in the recordings
store (never Redis), aligned with the transcript, served with ranges, deleted at retention."""

from __future__ import annotations

import io
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.admin.keys import ApiKeys
from app.store.keys import Keys
from app.store.objects import FileObjectStore, sweep
from switchboard_engine import Scenario
from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.summary import read_call
from tests.e2e.conftest import Stack, eventually

FLOWS = Path(__file__).resolve().parents[2] / "flows"
CONSENT = "This call is recorded for quality and training."


def _flows(tmp_path: Path) -> Path:
    out = tmp_path / "flows"
    out.mkdir()
    for path in FLOWS.glob("*.yaml"):
        text = path.read_text()
        if path.name == "support.yaml":
            text += 'recording:\n  mode: "on"\n'
        (out / path.name).write_text(text)
    return out


def _onsets(channel: np.ndarray, threshold: float = 500.0) -> list[int]:
    """ms where sound starts after ≥ 300 ms of quiet (20 ms windows)."""
    win = 160
    n = len(channel) // win
    loud = np.abs(channel[: n * win].reshape(n, win)).max(axis=1) > threshold
    out, quiet = [], 15
    for i, is_loud in enumerate(loud):
        if is_loud and quiet >= 15:
            out.append(i * 20)
        quiet = 0 if is_loud else quiet + 1
    return out


async def test_recorded_call_with_consent(make_stack: Any, tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "name": "rec",
            "greeting": "Hello.",
            "turns": [
                {"transcript": "What's the status of order ten forty-two?", "say": "Let me see."}
            ],
        }
    )
    rec_dir = tmp_path / "rec"
    stack: Stack = await make_stack(
        scenario=scenario, flows_dir=_flows(tmp_path), recordings_url=f"file://{rec_dir}"
    )
    script = CallScript(
        from_number="+15555550123",
        to_number="+15550100000",
        caller_audio=[recording_ulaw("order_status")],
        hangup_after_ms=1500,
        max_duration_s=40,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.errors == []
    stored = await read_call(stack.store, result.call_sid)
    record = stored["record"]
    key = record["recording"]
    assert key == f"recordings/{result.call_sid}.wav"
    said = [e for e in stored["transcript"] if e["role"] == "assistant"]
    assert said[0]["text"] == CONSENT  # before the greeting
    # Audio never in Redis: no key of this test holds the WAV's bytes.
    data = (rec_dir / key).read_bytes()
    async for k in stack.redis.scan_iter(match=stack.settings.redis_prefix + "*"):
        assert (await stack.redis.memory_usage(k) or 0) < len(data) // 4, k
    assert int(record["recording_bytes"]) == len(data)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    caller, agent = pcm[0::2], pcm[1::2]
    # The agent track: each line starts where the transcript says it started playing.
    agent_on = _onsets(agent)
    for entry in said:
        assert min(abs(o - int(entry["offset_ms"])) for o in agent_on) <= 100, (entry, agent_on)
    # The caller track: the utterance starts where the simulator started sending it.
    caller_on = _onsets(caller)
    start = result.utterances[0].start_ms
    assert caller_on and abs(caller_on[0] - start) <= 100 + _leading_ms("order_status")
    user = next(e for e in stored["transcript"] if e["role"] == "user")
    assert abs(int(user["offset_ms"]) - caller_on[0]) <= 400  # VAD's prefix padding: 300 ms

    keys = ApiKeys(stack.redis, Keys(stack.settings.redis_prefix))
    _, read = await keys.create("recording reader", "read")
    auth = {"Authorization": f"Bearer {read}"}
    url = f"/admin/calls/{result.call_sid}/recording"
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        assert (await http.get(url)).status_code == 401
        whole = await http.get(url, headers=auth)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes"
        head = await http.get(url, headers={**auth, "Range": "bytes=0-43"})
        assert head.status_code == 206 and head.content == data[:44]
        assert head.headers["content-range"] == f"bytes 0-43/{len(data)}"
        tail = await http.get(url, headers={**auth, "Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == data[-100:]
        past = await http.get(url, headers={**auth, "Range": f"bytes={len(data)}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{len(data)}"

    # Retention: the recordings sweep deletes what is older than the call records keep.
    store = FileObjectStore(rec_dir)
    retention_s = stack.settings.retention_days * 86400
    assert sweep(store, retention_s) == []
    assert sweep(store, retention_s, now_s=time.time() + retention_s + 1) == [key]
    assert not (rec_dir / key).exists()
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        assert (await http.get(url, headers=auth)).status_code == 404


def _leading_ms(name: str) -> int:
    """Silence at the start of a caller recording (ms)."""
    pcm = np.frombuffer(_pcm(recording_ulaw(name)), dtype="<i2")
    on = _onsets(np.concatenate([np.zeros(8 * 400, dtype="<i2"), pcm]))
    return (on[0] - 400) if on else 0


def _pcm(ulaw: bytes) -> bytes:
    from app.audio import ulaw_to_pcm16

    return ulaw_to_pcm16(ulaw)


async def test_twilio_records_the_call_for_real(make_stack: Any, tmp_path: Path) -> None:
    """recording_source=twilio: the Recordings API on the live call (dual channel); its
    signed status callback keeps where the recording is; nothing is written locally."""
    rec_dir = tmp_path / "rec"
    stack: Stack = await make_stack(
        flows_dir=_flows(tmp_path),
        recordings_url=f"file://{rec_dir}",
        recording_source="twilio",
    )
    script = CallScript(
        from_number="+15555550123",
        to_number="+15550100000",
        hangup_after_ms=1000,
        max_duration_s=30,
    )
    result = await stack.sim.place_inbound_call(script)
    assert result.errors == []
    (sid,) = stack.rest.recordings
    started = stack.rest.recordings[sid]
    assert started["RecordingChannels"] == "dual"
    assert started["RecordingStatusCallback"].endswith("/twilio/recording-status")

    # The callback is answered once the call record holds it.
    await eventually(lambda: "completed:" in stack.rest.recordings[sid]["callbacks"])
    record = await stack.store.get_call(result.call_sid) or {}
    assert record["recording_sid"] == sid and record["recording_source"] == "twilio"
    assert record["recording_channels"] == "2" and record["recording_url"].endswith(sid)
    assert "completed:204" in stack.rest.recordings[sid]["callbacks"]
    events = await stack.store.events(result.call_sid)
    kinds = [(e["kind"], e.get("status", "")) for e in events if e["kind"].startswith("recording")]
    assert kinds == [
        ("recording_started", ""),
        ("recording_status", "in-progress"),
        ("recording_status", "completed"),
    ]
    assert not rec_dir.exists()  # Twilio holds the audio
    # A forged callback is refused.
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        forged = await http.post(
            "/twilio/recording-status",
            data={"CallSid": result.call_sid, "RecordingSid": sid, "RecordingStatus": "absent"},
        )
        assert forged.status_code == 403
