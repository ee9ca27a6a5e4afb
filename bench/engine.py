"""``python -m bench engine``: the offline agent's figures (``make bench``).

1. **WER** of the engine's transcription (Whisper tiny.en, the engine's own settings) on
   the bundled caller recordings (``switchboard_sim/recordings``: Piper, voice joe) after the
   μ-law round trip (16-bit WAV → 8 kHz G.711 μ-law → PCM, exactly what a phone call
   carries), against ``transcripts.yaml``. Both sides are normalised before scoring:
   lower case, no punctuation, contractions expanded, numbers as digits ("one thousand
   forty two" = "ten forty-two" = "1,042" = "1042"). Then a hard case, not a target: the
   same texts in espeak-ng's robotic voice (the engine's ``espeak-ng`` TTS backend,
   synthesised at run time; skipped without espeak-ng), which tiny.en often mishears.
2. **Tool-choice accuracy** on the labelled utterances in
   ``switchboard_engine/data/tool_choice.yaml`` with the demo flow's tools and hints, reported
   for the cases the engine was tuned on and for the held-out ones; plus argument
   accuracy (arguments of the call, or the argument asked for).
3. **Voice-to-voice latency** per caller turn: ``switchboard engine`` runs as its own
   process; this bench plays the carrier, connecting over a real socket with the demo
   flow's session and streaming the bundled recordings in 20 ms frames at real time.
   Latency = wall time from the frame that carried the caller's last audible sample to
   the first ``response.output_audio.delta`` that arrives; also the tool round trip
   (``function_call_output`` + ``response.create`` sent → first audio).
4. **Memory**: the engine process's RSS once started (model loaded and warmed up), and
   its growth per concurrent session (sessions that configured and spoke one turn).

Options: ``--sessions 3`` (latency sessions, 4 turns each), ``--memory-sessions 10``,
``--tts auto|piper|espeak-ng|flite`` (the engine's voice), ``--skip latency memory …``,
``--baseline DIR`` (another version's source tree, e.g. ``git archive COMMIT | tar -x -C
DIR``: its engine runs with this Python, its latency sessions alternate with this
checkout's so both see the same load, and both are reported).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml
from websockets.asyncio.client import ClientConnection, connect

import switchboard_engine
from app.audio import FRAME_BYTES, FRAME_MS, ulaw_to_pcm16
from bench.wer import edit_distance, normalise

PY = sys.executable
LABELLED = Path(switchboard_engine.__file__).resolve().parent / "data" / "tool_choice.yaml"
#: A sample louder than this (16-bit) is speech when finding where a recording ends.
AUDIBLE = 300
#: Short sessions opened one after another by the memory section (RSS must stay flat).
SHORT_SESSIONS = 200
#: Silence streamed before each utterance (ms), and after it while waiting (ms).
LEAD_MS = 600
#: Recordings per latency session, in order, and the call each should produce.
TURNS: tuple[tuple[str, str | None], ...] = (
    ("order_status", "get_order_status"),
    ("agent_please", "transfer_call"),
    ("interrupt", None),
    ("goodbye", "end_call"),
)
TOOL_OUTPUTS: dict[str, dict[str, Any]] = {
    "get_order_status": {
        "ok": True,
        "found": True,
        "order_id": "1042",
        "account_id": "ACME-1001",
        "item": "espresso machine",
        "quantity": 1,
        "status": "shipped",
        "delivery_date": "2026-11-24",
        "created_at_ms": 1793491200000,
    },
    "transfer_call": {"ok": True, "transferring_to": "+1555•••9999"},
    "end_call": {"ok": True, "ending": True},
}


# --- 1. WER ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WerRow:
    """One transcribed clip: reference and heard text, word errors out of ``words``."""

    name: str
    ref: str
    heard: str
    errors: int
    words: int
    asr_ms: float
    audio_ms: float


def _wer_rows(asr: Any, clips: list[tuple[str, str, bytes]]) -> list[WerRow]:
    """Transcribe each (name, reference, 8 kHz μ-law) clip and score it."""
    rows = []
    for name, ref, ulaw in clips:
        result = asr.transcribe_sync(ulaw)
        r, h = normalise(ref), normalise(result.text)
        e = edit_distance(r, h)
        rows.append(WerRow(name, ref, result.text, e, len(r), result.elapsed_ms, result.audio_ms))
    return rows


def _print_wer(rows: list[WerRow]) -> float:
    """Print one line per clip and the total; returns the WER over all of them."""
    print(f"   {'recording':<18} {'WER':>5} {'ASR ms':>7} {'audio ms':>8}  transcript")
    for w in rows:
        print(
            f"   {w.name:<18} {w.errors / w.words:>5.0%} {w.asr_ms:>7.0f} {w.audio_ms:>8.0f}  "
            f"{w.heard!r}  (ref {w.ref!r})"
        )
    errors, words = sum(w.errors for w in rows), sum(w.words for w in rows)
    total = errors / words
    print(f"   WER over {len(rows)} recordings: {total:.1%} ({errors} errors / {words} words)")
    return total


def _espeak_clips(texts: dict[str, str]) -> list[tuple[str, str, bytes]]:
    """The bundled recordings' texts spoken by espeak-ng (the engine's backend)."""
    from switchboard_engine.tts import EspeakBackend

    backend = EspeakBackend()

    async def render_all() -> list[bytes]:
        return [await backend.render(text, "caller") for text in texts.values()]

    return list(zip(texts, texts.values(), asyncio.run(render_all()), strict=True))


def bench_wer() -> dict[str, Any]:
    import shutil

    from switchboard_engine.asr import shared_transcriber
    from switchboard_sim.assets import recording_ulaw, transcripts

    t0 = time.perf_counter()
    asr = shared_transcriber()
    load_s = time.perf_counter() - t0
    texts = dict(sorted(transcripts().items()))
    rows = _wer_rows(asr, [(name, ref, recording_ulaw(name)) for name, ref in texts.items()])
    c = asr.config
    print(
        f"\n1. Transcription (whisper tiny.en, {c.compute_type}, beam {c.beam_size}, "
        f"{c.workers} workers × {c.cpu_threads} thread; load + warm-up {load_s:.1f} s)"
    )
    total = _print_wer(rows)
    out: dict[str, Any] = {"wer": total, "rows": rows}
    if shutil.which("espeak-ng") is None:
        print("   hard case skipped: espeak-ng is not installed")
        return out
    print("   hard case, not a target: the same texts in espeak-ng's voice (en-us, 165 wpm)")
    hard = _wer_rows(asr, _espeak_clips(texts))
    out["hard_wer"], out["hard_rows"] = _print_wer(hard), hard
    return out


# --- 2. tool choice -------------------------------------------------------------------------
def bench_tool_choice() -> dict[str, Any]:
    import datetime as dt

    from switchboard_engine.hints import FlowHints, tool_specs
    from switchboard_engine.understanding import Context, Understanding
    from tools.registry import default_registry

    data = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))
    hints = FlowHints.load()
    flow = next(f for f in hints.flows if f.name == data["flow"])
    specs = tool_specs(default_registry().definitions(flow.tools), flow)
    ctx = Context(dt.date(2026, 11, 20), targets=tuple(flow.transfer_targets))
    stats: dict[str, list[int]] = {}
    misses: list[str] = []
    t0 = time.perf_counter()
    for case in data["cases"]:
        split = str(case.get("split", "tuned"))
        d = Understanding(specs, ctx).decide(case["text"])
        chosen = d.tool if d.action in ("call", "ask") else None
        tool_ok = chosen == case["tool"]
        args_ok: bool | None = None
        if "args" in case:
            args_ok = d.missing is None and all(
                d.arguments.get(k) == v for k, v in case["args"].items()
            )
        elif "ask" in case:
            args_ok = d.action == "ask" and d.missing == case["ask"]
        s = stats.setdefault(split, [0, 0, 0, 0])
        s[0] += tool_ok
        s[1] += 1
        if args_ok is not None:
            s[2] += bool(args_ok and tool_ok)
            s[3] += 1
        if not tool_ok or args_ok is False:
            misses.append(
                f"   [{split}] {case['text']!r}: want {case['tool']} "
                f"{case.get('args') or case.get('ask') or ''} → got {d.action} {chosen} "
                f"{d.arguments if d.action == 'call' else d.missing or ''}"
            )
    ms = (time.perf_counter() - t0) * 1000 / len(data["cases"])
    print(f"\n2. Understanding ({len(data['cases'])} labelled utterances, flow {flow.name!r})")
    total = [sum(s[i] for s in stats.values()) for i in range(4)]
    for split, s in [*sorted(stats.items(), reverse=True), ("all", total)]:
        print(
            f"   {split:<8} tool choice {s[0]}/{s[1]} = {s[0] / s[1]:.1%}   "
            f"arguments {s[2]}/{s[3]} = {s[2] / max(1, s[3]):.1%}"
        )
    print(f"   {ms:.2f} ms per decision")
    if misses:
        print("   misses:")
        print("\n".join(misses))
    return {"stats": stats, "ms_per_decision": ms}


# --- engine process -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EngineProcess:
    """``switchboard engine`` in a child process on a free loopback port."""

    tts: str = "auto"
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    #: Run the engine of another source tree (a checkout of an older commit) with this
    #: Python, to measure old and new side by side; None: this checkout's.
    source: Path | None = None
    label: str = "this checkout"

    def start(self, timeout_s: float = 120.0) -> None:
        env = {**os.environ, "SWITCHBOARD_LOG_LEVEL": "WARNING", "SWITCHBOARD_LOG_JSON": "false"}
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
        argv = [PY, "-m", "app.cli", "engine", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--tts", self.tts]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, cwd=self.source or None
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                self.started_s = time.perf_counter() - t0
                return
            time.sleep(0.1)
        raise TimeoutError("engine did not start")

    def rss_kib(self) -> int:
        """Resident set size of the engine process (KiB, /proc/PID/status VmRSS)."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(m.group(1)) if m else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _session() -> dict[str, Any]:
    from app.realtime.dialect import session_config
    from flows import FlowCatalog
    from tools.registry import default_registry

    flow = FlowCatalog.load().get("support")
    assert flow is not None
    return session_config(flow, default_registry().definitions(flow.tools), beta=False)


async def _open(port: int) -> ClientConnection:
    ws = await connect(
        f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
        additional_headers={"Authorization": "Bearer bench"},
        max_size=2**24,
    )
    await ws.send(orjson.dumps({"type": "session.update", "session": _session()}).decode())
    return ws


def _last_audible_ms(ulaw: bytes) -> float:
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > AUDIBLE)
    return float(loud[-1]) / 8.0 if len(loud) else 0.0


@dataclass
class Turn:
    recording: str
    transcript: str = ""
    call: str | None = None
    voice_ms: float | None = None
    tool_ms: float | None = None


async def _play_turn(ws: ClientConnection, name: str, expect: str | None) -> Turn:
    """Stream one recording at real time and follow the engine until it has answered."""
    from switchboard_sim.assets import recording_ulaw

    speech = recording_ulaw(name)
    audio = b"\xff" * (LEAD_MS * 8) + speech + b"\xff" * (1500 * 8)
    last_frame = int((LEAD_MS + _last_audible_ms(speech)) // FRAME_MS)
    frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
    loop = asyncio.get_running_loop()
    turn = Turn(name)
    end_of_speech: list[float] = []
    first_audio: list[float] = []
    tool_sent: list[float] = []
    tool_audio: list[float] = []
    done = asyncio.Event()

    async def reader() -> None:
        waiting_tool = False
        async for raw in ws:
            event = orjson.loads(raw)
            kind = event["type"]
            now = loop.time()
            if kind == "response.output_audio.delta":
                if waiting_tool and not tool_audio:
                    tool_audio.append(now)
                elif end_of_speech and not first_audio:
                    first_audio.append(now)
            elif kind == "conversation.item.input_audio_transcription.completed":
                turn.transcript = event["transcript"]
            elif kind == "response.done":
                calls = [o for o in event["response"]["output"] if o["type"] == "function_call"]
                if calls and not waiting_tool:
                    call = calls[0]
                    turn.call = call["name"]
                    output = TOOL_OUTPUTS.get(call["name"], {"ok": True})
                    item = {
                        "type": "function_call_output",
                        "call_id": call["call_id"],
                        "output": json.dumps(output),
                    }
                    await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
                    await ws.send(json.dumps({"type": "response.create"}))
                    tool_sent.append(loop.time())
                    waiting_tool = True
                else:
                    done.set()
                    return

    task = asyncio.create_task(reader())
    t0 = loop.time()
    for k, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, t0 + k * FRAME_MS / 1000 - loop.time()))
        b64 = base64.b64encode(frame).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64}))
        if k == last_frame:
            end_of_speech.append(loop.time())
    async with asyncio.timeout(30):
        await done.wait()
    await task
    if end_of_speech and first_audio:
        turn.voice_ms = (first_audio[0] - end_of_speech[0]) * 1000
    if tool_sent and tool_audio:
        turn.tool_ms = (tool_audio[0] - tool_sent[0]) * 1000
    if expect is not None and turn.call != expect:
        print(f"   note: {name} → {turn.call} (expected {expect}); heard {turn.transcript!r}")
    return turn


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(len(ordered) - 1, int(k) + 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def bench_latency(
    engine: EngineProcess, sessions: int, baseline: EngineProcess | None = None
) -> dict[str, Any]:
    """Section 3 for ``engine``; with a ``baseline`` engine too, their sessions alternate
    (new, old, new, old, …) so both see the same machine load, and both are reported."""
    engines = {engine.label: engine}
    if baseline is not None:
        engines[baseline.label] = baseline
    return await _latency_of(engines, sessions, engine)


async def _latency_of(
    engines: dict[str, EngineProcess], sessions: int, main: EngineProcess
) -> dict[str, Any]:
    turns: dict[str, list[Turn]] = {label: [] for label in engines}
    for _ in range(sessions):
        for label, eng in engines.items():
            ws = await _open(eng.port)
            for name, expect in TURNS:
                turns[label].append(await _play_turn(ws, name, expect))
            await ws.close()
    out: dict[str, Any] = {}
    for label, mine in turns.items():
        out[label] = _report_latency(engines[label], mine, label if len(engines) > 1 else None)
    return out if len(engines) > 1 else out[main.label]


def _report_latency(engine: EngineProcess, turns: list[Turn], label: str | None) -> dict[str, Any]:
    voice = [t.voice_ms for t in turns if t.voice_ms is not None]
    tool = [t.tool_ms for t in turns if t.tool_ms is not None]
    right = sum(t.call == dict(TURNS)[t.recording] for t in turns)
    budget = 500 + 600
    which = f", {label}" if label else ""
    print(
        f"\n3. Voice-to-voice latency (engine process{which}, tts {engine.tts}, {len(turns)} "
        f"turns streamed at real time, load average {os.getloadavg()[0]:.2f})"
    )
    print(f"   {'recording':<14} {'p50 ms':>7} {'max ms':>7}  call made; heard")
    for name, _ in TURNS:
        mine = [t for t in turns if t.recording == name]
        vs = [t.voice_ms for t in mine if t.voice_ms is not None]
        calls = ", ".join(sorted({str(t.call) for t in mine}))
        heard = " | ".join(sorted({repr(t.transcript) for t in mine}))
        if vs:
            p50, top = statistics.median(vs), max(vs)
            print(f"   {name:<14} {p50:>7.0f} {top:>7.0f}  {calls}; {heard}")
    print(
        f"   end of caller speech → first agent audio: p50 {_pct(voice, 0.5):.0f} ms, "
        f"p95 {_pct(voice, 0.95):.0f} ms (targets silence_duration_ms 500 + 300 = {budget - 300}"
        f" ms and 500 + 600 = {budget} ms)"
    )
    if tool:
        print(
            f"   function_call_output → first audio of the answer: p50 {_pct(tool, 0.5):.0f} ms, "
            f"p95 {_pct(tool, 0.95):.0f} ms"
        )
    print(f"   turns that made the expected call (or none): {right}/{len(turns)}")
    return {"voice_ms": voice, "tool_ms": tool, "right": right, "turns": len(turns)}


async def bench_memory(engine: EngineProcess, sessions: int) -> dict[str, Any]:
    """RSS once started, then after ``sessions`` and ``2 × sessions`` concurrent sessions
    that each configured and spoke one turn: per session = the growth of the second batch
    (the first also pays one-time allocations: decoder buffers, thread arenas)."""
    from switchboard_sim.assets import recording_ulaw

    speech = b"\xff" * 2400 + recording_ulaw("agent_please") + b"\xff" * 8000
    b64 = [base64.b64encode(speech[i : i + 800]).decode() for i in range(0, len(speech), 800)]

    async def one_turn(ws: ClientConnection) -> None:
        for chunk in b64:
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        async with asyncio.timeout(300):
            async for raw in ws:
                if orjson.loads(raw)["type"] == "response.done":
                    return

    base = engine.rss_kib()
    conns: list[ClientConnection] = []
    rss: list[int] = []
    for _ in range(2):
        batch = [await _open(engine.port) for _ in range(sessions)]
        await asyncio.gather(*(one_turn(ws) for ws in batch))
        conns += batch
        rss.append(engine.rss_kib())
    for ws in conns:
        await ws.close()
    per = (rss[1] - rss[0]) / sessions

    # Then many short sessions one after another (each configures server VAD, which makes
    # its Silero VAD, streams 1 s of audio and hangs up): RSS must stay flat.
    quiet = [base64.b64encode(b"\xff" * 800).decode()] * 10

    async def short_session() -> None:
        ws = await _open(engine.port)
        for chunk in quiet:
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        await ws.close()

    flat: list[tuple[int, int]] = []
    for n in range(1, SHORT_SESSIONS + 1):
        await short_session()
        if n in (SHORT_SESSIONS // 10, SHORT_SESSIONS // 2, SHORT_SESSIONS):
            await asyncio.sleep(0.5)  # let the engine finish closing
            flat.append((n, engine.rss_kib()))
    slope = (flat[-1][1] - flat[0][1]) / (flat[-1][0] - flat[0][0])
    print(f"\n4. Memory (RSS of the engine process, tts {engine.tts})")
    print(
        f"   started, model loaded and warmed up: {base / 1024:.0f} MiB "
        f"(ready in {engine.started_s:.1f} s)"
    )
    print(
        f"   {sessions} sessions open, one spoken turn each: {rss[0] / 1024:.0f} MiB; "
        f"{2 * sessions}: {rss[1] / 1024:.0f} MiB → {per / 1024:.2f} MiB per session"
    )
    print(
        f"   {SHORT_SESSIONS} short sessions one after another: "
        + ", ".join(f"after {n}: {k / 1024:.0f} MiB" for n, k in flat)
        + f" → {slope:.1f} KiB per session (from session {flat[0][0]} on)"
    )
    return {"base_kib": base, "rss_kib": rss, "per_session_kib": per, "flat": flat}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__)
    p.add_argument("--sessions", type=int, default=3, help="latency sessions (4 turns each)")
    p.add_argument("--memory-sessions", type=int, default=10)
    p.add_argument("--tts", default="auto", choices=["auto", "piper", "espeak-ng", "flite"])
    p.add_argument(
        "--skip", nargs="*", default=[], choices=["wer", "tools", "speech", "latency", "memory"]
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="source tree of another engine version (e.g. `git archive` of an older commit): "
        "its latency sessions alternate with this checkout's, both reported",
    )
    a = p.parse_args(argv)
    print(f"engine bench on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    if "wer" not in a.skip:
        bench_wer()
    if "tools" not in a.skip:
        bench_tool_choice()
        from bench.phrasings import bench_phrasings

        bench_phrasings(speech="speech" not in a.skip)
    if "latency" in a.skip and "memory" in a.skip:
        return
    engine = EngineProcess(tts=a.tts)
    baseline = None
    if a.baseline is not None and "latency" not in a.skip:
        baseline = EngineProcess(tts=a.tts, source=a.baseline.resolve(), label=f"{a.baseline}")
    try:
        engine.start()
        if baseline is not None:
            baseline.start()
        if "latency" not in a.skip:
            asyncio.run(bench_latency(engine, a.sessions, baseline))
        if baseline is not None:
            baseline.stop()
        if "memory" not in a.skip:
            asyncio.run(bench_memory(engine, a.memory_sessions))
    finally:
        engine.stop()
        if baseline is not None:
            baseline.stop()
