"""Load generator: N simulated Twilio calls at real-time pace, measured frame by frame.

Each call is set up as Twilio does (``switchboard`` mode: signed ``POST /twilio/voice``,
the TwiML's ``<Stream>`` URL and ``<Parameter>``s, a media WebSocket whose ``start``
carries them; ``relay`` mode: straight to the socket), then sends one 20 ms ``media``
frame (160 bytes of μ-law) every 20 ms on an absolute deadline schedule. Calls are
spread evenly over the 20 ms period, as independent phone calls are.

Every frame is stamped with the call index and a sequence number (``bench.stamp``).
The echo engine returns each frame as assistant audio, the bridge relays it back, so
the generator times the full round trip carrier → bridge → engine → bridge → carrier
from one clock. Outbound audio is "played" in real time per call; each ``mark`` is
echoed once the audio before it has played, as Twilio does; ``clear`` drops the
queued audio and echoes every pending mark at once. At each ``clear`` it records when
it was read (CLOCK_MONOTONIC, ns) and how much of the current assistant item had been
played (ms), for the barge-in latency and the truncate check done with the echo
engine's records.

The generator checks itself: every frame's lateness behind its deadline and the CPU
time of its own process (and the echo engine's, which shares its core) over the
window, so a saturated generator is never mistaken for a slow server.

Units: times in ns on CLOCK_MONOTONIC unless named ``_ms``/``_s``; CPU in seconds.
Each call's socket is a picows client (as Switchboard's own sockets, ``app.call.links``):
a callback per message, a synchronous send, one message costs the generator a few
microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import heapq
import os
import secrets
import sys
import time
import xml.etree.ElementTree as ET
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from picows import WSCloseCode, WSMsgType, WSTransport, WSUpgradeResponse, ws_connect
from twilio.request_validator import RequestValidator

from app.audio import FRAME_MS
from app.call.links import WIRE_LOG, MessageListener
from bench.loop import run_loop
from bench.stamp import payload_bytes, read_stamp, stamped_payload

FRAME_NS = FRAME_MS * 1_000_000
#: ns of playback per μ-law byte (8 kHz).
NS_PER_BYTE = 125_000
#: Concurrent call set-ups (webhook + WebSocket handshake).
SETUP_CONCURRENCY = 32
#: Frames per bucket of the worst-round-trip timeline (25 = 500 ms).
TIMELINE_FRAMES = 25
#: Shortest sleep of the schedule loop (s): libuv timers have 1 ms resolution.
TICK_S = 0.001
_TEXT = WSMsgType.TEXT


# --- /proc helpers ---------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (s), from ``/proc/PID/stat``; 0.0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def runqueue_wait_seconds(pid: int) -> float:
    """Time process ``pid``'s threads spent runnable but waiting for a CPU (s), from
    ``/proc/PID/task/*/schedstat``: how much other work on its core delayed it."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(OSError, ValueError, IndexError),
                open(f"/proc/{pid}/task/{task}/schedstat") as f,
            ):
                total += int(f.read().split()[1])
    return total / 1e9


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (bytes), from ``/proc/PID/status``; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def core_busy_seconds() -> list[float]:
    """Busy time (s) of each CPU since boot (``/proc/stat``: all but idle and iowait)."""
    out: list[float] = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                out.append((sum(v[:8]) - v[3] - v[4]) / CLK_TCK)
    return out


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (``/proc/PID/task/*/children``)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    return out


# --- one call ----------------------------------------------------------------------------------


class CallConn(MessageListener):
    """One simulated call's media socket (client side) and its measurements."""

    def __init__(self, gen: Generator, idx: int, stream_sid: str, call_sid: str) -> None:
        super().__init__(1 << 20)
        self.deliver = self._on_message
        self.gen = gen
        self.idx = idx
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.closed = False
        self.msg_seq = 0  # Twilio's sequenceNumber
        self.seq = 0  # next media frame (its stamp)
        self.t_send = array("q")  # send time of frame seq (ns)
        self.received = 0  # frames of the measurement window that came back
        self.play_end = 0  # when the queued outbound audio finishes playing (ns)
        self.item_ns = 0  # audio of the current assistant item received (ns of playback)
        self.marks: deque[tuple[int, str]] = deque()  # (due ns, name)
        self.phase = 0

    # --- transport ------------------------------------------------------------------------

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.disconnect(graceful=False)

    def send_text(self, text: str) -> None:
        if self.transport is not None:
            self.transport.send(_TEXT, text)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_close_frame_sent:
            self.transport.send_close(WSCloseCode.OK)

    def next_seq(self) -> str:
        self.msg_seq += 1
        return str(self.msg_seq)

    # --- inbound ----------------------------------------------------------------------------

    def _on_message(self, payload: bytes) -> None:
        now = time.monotonic_ns()
        try:
            d = orjson.loads(payload)
            event = d["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.gen.error(f"call {self.idx}: unparseable message {payload[:80]!r}")
            return
        if event == "media":
            p = d["media"]["payload"]
            gen = self.gen
            try:
                call, seq = read_stamp(p)
            except ValueError:
                gen.unstamped += 1
                call, seq = self.idx, -1
            if call != self.idx:
                gen.crossed += 1
            elif gen.seq_w0 <= seq < gen.seq_w1 and seq < len(self.t_send):
                self.received += 1
                rtt = now - self.t_send[seq]
                gen.rtt.append(rtt)
                b = (seq - gen.seq_w0) // TIMELINE_FRAMES
                if rtt > gen.timeline[b]:
                    gen.timeline[b] = rtt
            start = self.play_end if self.play_end > now else now
            dur = payload_bytes(p) * NS_PER_BYTE
            self.play_end = start + dur
            self.item_ns += dur
        elif event == "mark":
            due = self.play_end if self.play_end > now else now
            self.marks.append((due, d["mark"]["name"]))
            heapq.heappush(self.gen.mark_heap, (due, self.idx))
        elif event == "clear":
            unplayed = self.play_end - now if self.play_end > now else 0
            self.gen.clears.append((self.idx, now, (self.item_ns - unplayed) / 1e6))
            self.play_end = now
            self.item_ns = 0
            self.echo_marks(now, flush=True)

    def echo_marks(self, now: int, flush: bool = False) -> None:
        """Echo every mark whose audio has played by ``now`` (all of them on ``flush``)."""
        marks = self.marks
        transport = self.transport
        while marks and (flush or marks[0][0] <= now):
            _, name = marks.popleft()
            self.msg_seq += 1
            name_json = orjson.dumps(name).decode()
            if transport is not None:
                transport.send(
                    _TEXT,
                    f'{{"event":"mark","sequenceNumber":"{self.msg_seq}",'
                    f'"streamSid":"{self.stream_sid}","mark":{{"name":{name_json}}}}}',
                )

    # --- outbound ---------------------------------------------------------------------------

    def send_frame(self, deadline: int) -> None:
        """Send frame ``self.seq`` (due at ``deadline`` ns) and note its send time."""
        seq = self.seq
        self.seq = seq + 1
        self.msg_seq += 1
        text = (
            f'{{"event":"media","sequenceNumber":"{self.msg_seq}","media":{{"track":"inbound",'
            f'"chunk":"{seq + 1}","timestamp":"{seq * FRAME_MS}",'
            f'"payload":"{stamped_payload(self.idx, seq)}"}},"streamSid":"{self.stream_sid}"}}'
        )
        now = time.monotonic_ns()
        self.t_send.append(now)
        self.gen.lateness.append(now - deadline)
        if self.transport is not None:
            self.transport.send(_TEXT, text)


# --- the generator -------------------------------------------------------------------------------


@dataclass
class Options:
    """One load step. ``target``: the server's base URL (``http://127.0.0.1:PORT``)."""

    target: str
    n: int
    duration_s: float = 15.0
    warmup_s: float = 2.0
    drain_s: float = 1.0
    mode: str = "switchboard"  # or "relay": no webhook, media socket at ``target``
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "dev-twilio-auth-token"
    public_base_url: str | None = None
    to_number: str = "+15550100000"
    server_pids: list[int] = field(default_factory=list)
    echo_pid: int | None = None


class Generator:
    """Runs one load step (``await run()``) and returns its measurements as a dict."""

    def __init__(self, opts: Options) -> None:
        self.o = opts
        self.calls: list[CallConn] = []
        self.rtt = array("q")
        self.lateness = array("q")
        self.clears: list[tuple[int, int, float]] = []
        self.mark_heap: list[tuple[int, int]] = []
        self.errors: list[str] = []
        self.crossed = 0
        self.unstamped = 0
        self.seq_w0 = 1 << 62
        self.seq_w1 = 1 << 62
        self.timeline = array("q")
        self._validator = RequestValidator(opts.auth_token)

    def error(self, msg: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(msg)

    # --- set-up ------------------------------------------------------------------------------

    async def _webhook(self, http: httpx.AsyncClient, call_sid: str) -> tuple[str, dict[str, str]]:
        o = self.o
        public = (o.public_base_url or o.target).rstrip("/")
        params = {
            "AccountSid": o.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": "+15555550123",
            "To": o.to_number,
        }
        sig = self._validator.compute_signature(public + "/twilio/voice", params)
        r = await http.post(
            o.target.rstrip("/") + "/twilio/voice",
            data=params,
            headers={"X-Twilio-Signature": sig},
        )
        r.raise_for_status()
        root = ET.fromstring(r.text)
        stream = root.find("./Connect/Stream")
        if stream is None:
            raise RuntimeError("TwiML without <Connect><Stream>")
        url = stream.get("url", "")
        return url, {p.get("name", ""): p.get("value", "") for p in stream.findall("./Parameter")}

    async def _setup(self, idx: int, http: httpx.AsyncClient, sem: asyncio.Semaphore) -> None:
        o = self.o
        call_sid = "CA" + secrets.token_hex(16)
        stream_sid = "MZ" + secrets.token_hex(16)
        async with sem:
            if o.mode == "switchboard":
                url, params = await self._webhook(http, call_sid)
            else:
                url, params = o.target.replace("http", "ws", 1), {}
            conn = CallConn(self, idx, stream_sid, call_sid)

            def listener(request: Any, response: WSUpgradeResponse) -> CallConn:
                return conn

            headers = {"X-Twilio-Signature": self._validator.compute_signature(url, {})}
            async with asyncio.timeout(10):
                await ws_connect(
                    listener,
                    url,
                    extra_headers=headers,
                    websocket_handshake_timeout=10,
                    logger_name=WIRE_LOG,
                )
        conn.send_text(
            orjson.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}).decode()
        )
        conn.send_text(
            orjson.dumps(
                {
                    "event": "start",
                    "sequenceNumber": conn.next_seq(),
                    "start": {
                        "accountSid": o.account_sid,
                        "streamSid": stream_sid,
                        "callSid": call_sid,
                        "tracks": ["inbound"],
                        "customParameters": params,
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                    "streamSid": stream_sid,
                }
            ).decode()
        )
        self.calls.append(conn)

    # --- the run ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        o = self.o
        pids = list(o.server_pids)
        rss0 = sum(rss_bytes(p) for p in pids)
        t_setup = time.monotonic()
        sem = asyncio.Semaphore(SETUP_CONCURRENCY)
        async with httpx.AsyncClient(timeout=30) as http:
            results = await asyncio.gather(
                *(self._setup(i, http, sem) for i in range(o.n)), return_exceptions=True
            )
        for r in results:
            if isinstance(r, BaseException):
                self.error(f"set-up failed: {r!r}")
        setup_s = time.monotonic() - t_setup
        self.calls.sort(key=lambda c: c.idx)
        n = len(self.calls)
        if n == 0:
            return {"n": o.n, "connected": 0, "errors": self.errors}
        await asyncio.sleep(0.5)  # let the Realtime legs open before the first frame
        gc.collect()
        gc.disable()  # the schedule must not stall on a collection; nothing here cycles
        warm_frames = round(o.warmup_s * 1000 / FRAME_MS)
        win_frames = round(o.duration_s * 1000 / FRAME_MS)
        self.seq_w0, self.seq_w1 = warm_frames, warm_frames + win_frames
        self.timeline = array("q", [0] * (win_frames // TIMELINE_FRAMES + 1))
        total = warm_frames + win_frames
        for i, c in enumerate(self.calls):
            c.phase = i * FRAME_NS // n
        t0 = time.monotonic_ns() + 20_000_000
        w0 = t0 + warm_frames * FRAME_NS
        w1 = t0 + total * FRAME_NS
        cpu0: dict[str, float] = {}
        cpu1: dict[str, float] = {}
        await self._schedule(t0, total, w0, cpu0)
        cpu1 = self._cpu()
        rss1 = sum(rss_bytes(p) for p in pids)
        lat_window = self.lateness[n * warm_frames :]
        await self._drain(o.drain_s)
        closed_early = sum(1 for c in self.calls if c.closed)
        gc.enable()
        for c in self.calls:
            c.msg_seq += 1
            c.send_text(
                orjson.dumps(
                    {
                        "event": "stop",
                        "sequenceNumber": str(c.msg_seq),
                        "streamSid": c.stream_sid,
                        "stop": {"accountSid": o.account_sid, "callSid": c.call_sid},
                    }
                ).decode()
            )
            c.close()
        await asyncio.sleep(0.3)
        for c in self.calls:
            if c.transport is not None:
                c.transport.disconnect()
        window_s = (w1 - w0) / 1e9
        expected = n * win_frames
        received = sum(c.received for c in self.calls)
        return {
            "n": o.n,
            "connected": n,
            "setup_s": round(setup_s, 3),
            "window": [w0, w1],
            "window_s": window_s,
            "frames_expected": expected,
            "frames_received": received,
            "frames_lost": expected - received,
            "crossed": self.crossed,
            "unstamped": self.unstamped,
            "rtt_ns": _quantiles(self.rtt),
            "lateness_ns": _quantiles(lat_window),
            "rtt_max_ms_per_500ms": [round(v / 1e6, 1) for v in self.timeline],
            "clears": [c for c in self.clears if w0 <= c[1] <= w1 + int(o.drain_s * 1e9)],
            "cpu_s": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
            "rss_bytes": [rss0, rss1],
            "server_pids": pids,
            "closed_early": closed_early,
            "errors": self.errors,
        }

    def _cpu(self) -> dict[str, float]:
        o = self.o
        out = {
            "server": sum(cpu_seconds(p) for p in o.server_pids),
            "generator": cpu_seconds(os.getpid()),
            "server_wait": sum(runqueue_wait_seconds(p) for p in o.server_pids),
            "generator_wait": runqueue_wait_seconds(os.getpid()),
        }
        if o.echo_pid:
            out["echo"] = cpu_seconds(o.echo_pid)
        for i, busy in enumerate(core_busy_seconds()):
            out[f"core{i}"] = busy
        if len(o.server_pids) > 1:
            for p in o.server_pids:
                out[f"pid{p}"] = cpu_seconds(p)
        return out

    async def _schedule(self, t0: int, total: int, w0: int, cpu0: dict[str, float]) -> None:
        """Send ``total`` frames per call on the absolute schedule; echo due marks."""
        calls = self.calls
        n = len(calls)
        heap = self.mark_heap
        pop = heapq.heappop
        mono = time.monotonic_ns
        sleep = asyncio.sleep
        j = 0  # next call in phase order
        r = 0  # its frame round
        window_started = False
        while r < total:
            now = mono()
            if not window_started and now >= w0:
                cpu0.update(self._cpu())
                window_started = True
            while r < total:
                c = calls[j]
                deadline = t0 + r * FRAME_NS + c.phase
                if deadline > now:
                    break
                c.send_frame(deadline)
                j += 1
                if j == n:
                    j = 0
                    r += 1
                    now = mono()
            while heap and heap[0][0] <= now:
                _, idx = pop(heap)
                calls[idx].echo_marks(now)
            nxt = t0 + r * FRAME_NS + calls[j].phase if r < total else now
            if heap and heap[0][0] < nxt:
                nxt = heap[0][0]
            await sleep(max(TICK_S, (nxt - mono()) / 1e9))
        if not window_started:
            cpu0.update(self._cpu())

    async def _drain(self, seconds: float) -> None:
        """Keep echoing marks while the last frames come back."""
        end = time.monotonic_ns() + int(seconds * 1e9)
        heap = self.mark_heap
        while (now := time.monotonic_ns()) < end:
            while heap and heap[0][0] <= now:
                _, idx = heapq.heappop(heap)
                self.calls[idx].echo_marks(now)
            await asyncio.sleep(TICK_S * 5)


def _quantiles(values: array[int]) -> dict[str, float]:
    """count, p50/p95/p99/max (same unit as ``values``)."""
    if not values:
        return {"count": 0}
    import numpy as np

    a = np.frombuffer(values, dtype=np.int64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "count": int(a.size),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(a.max()),
    }


async def _main(opts: Options, echo_port: int | None) -> dict[str, Any]:
    if echo_port is None:
        return await Generator(opts).run()
    from bench.echo import EchoServer

    async with EchoServer(port=echo_port) as echo:
        sys.stdout.write(f"listening {echo.port}\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if not words or words[0] != "go":
            raise SystemExit("expected 'go [PID ...]' on stdin")
        opts.server_pids = [int(w) for w in words[1:]]
        result = await Generator(opts).run()
    result["echo"] = echo.stats.as_json()
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("--target", required=True, help="server base URL, http://HOST:PORT")
    p.add_argument("--n", type=int, required=True, help="concurrent calls")
    p.add_argument("--duration", type=float, default=15.0, help="measurement window (s)")
    p.add_argument("--warmup", type=float, default=2.0, help="frames before the window (s)")
    p.add_argument("--drain", type=float, default=1.0, help="wait for late frames (s)")
    p.add_argument("--mode", choices=["switchboard", "relay"], default="switchboard")
    p.add_argument("--auth-token", default="dev-twilio-auth-token")
    p.add_argument("--account-sid", default="AC" + "0" * 32)
    p.add_argument("--server-pid", type=int, action="append", default=[])
    p.add_argument("--echo-pid", type=int, default=None, help="an echo engine process")
    p.add_argument(
        "--echo-port",
        type=int,
        default=None,
        help="serve the echo engine in this process on this port; print 'listening PORT', "
        "then wait for a line 'go [SERVER-PID ...]' on stdin before placing calls",
    )
    a = p.parse_args(argv)
    opts = Options(
        target=a.target,
        n=a.n,
        duration_s=a.duration,
        warmup_s=a.warmup,
        drain_s=a.drain,
        mode=a.mode,
        account_sid=a.account_sid,
        auth_token=a.auth_token,
        server_pids=a.server_pid,
        echo_pid=a.echo_pid,
    )
    result = run_loop(_main(opts, a.echo_port))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
