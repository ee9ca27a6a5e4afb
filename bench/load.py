"""``python -m bench load``: the load benchmark (``make bench``, ``switchboard bench``).

For each step it starts, on a 2-core machine:

- the server under test pinned to core 0 (``taskset -c 0``): Switchboard
  (``switchboard serve``: webhooks on its HTTP port, media streams on its media port;
  real Redis, signed webhooks, tokens, the whole bridge) or the bare relay
  (``bench.relay``);
- the echo Realtime engine (``bench.echo``) and the load generator
  (``bench.loadgen``) pinned to core 1;

runs N simulated calls through it and prints, per server and N: frames lost,
round-trip latency carrier → bridge → engine → bridge → carrier (p50/p95/p99/max),
barge-in latency (``speech_started`` written by the engine → ``clear`` read at the
carrier, CLOCK_MONOTONIC across processes) p50/p99, truncate correctness (the
``audio_end_ms`` sent vs. the audio the carrier had played of the item, within one
20 ms frame), server CPU-seconds per call-minute (``/proc/PID/stat`` utime+stime over
the window), RSS per call (growth over the idle server) and whether the generator fell
behind. Then the Switchboard/relay CPU ratio, the highest N whose p99 stays under 20 ms
and a scale-out run: two worker processes on one port (both cores, shared with the
generator), with the capacity it reaches.

Options: ``--n 1 50 100 200 300`` (the sweep), ``--duration 15`` (window, s),
``--servers switchboard relay``, ``--scale-out 200 300 400`` (N for the two-worker run,
``--scale-out`` alone: none), ``--ws``/``--loop`` (``switchboard serve``'s),
``--json PATH`` (every figure as JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.loadgen import children

PY = sys.executable
#: p99 round trip (ms) a step must stay under to count as carried (one 20 ms frame).
CAPACITY_P99_MS = 20.0
#: The generator "fell behind" when its frames' p99 lateness passes this (ms) …
LAG_P99_MS = 5.0
#: … or its core (generator + echo engine) was busier than this share of one core.
CORE_BUSY = 0.90
#: A truncate is correct when it is within one frame of what the carrier played (ms).
TRUNCATE_TOLERANCE_MS = 20.0
#: A server this busy (cores) is saturated: its frames queue, and its CPU per call-minute
#: no longer says what a call costs (it cannot spend more than its core).
SATURATED_CORES = 0.9


@dataclass
class Step:
    """One measured run: ``server`` (switchboard|relay) at ``n`` calls on ``workers``."""

    server: str
    n: int
    workers: int = 1
    gen: dict[str, Any] = field(default_factory=dict)
    echo: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    # --- derived figures ----------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.gen.get("connected"))

    def rtt_ms(self, q: str) -> float:
        v = self.gen.get("rtt_ns", {}).get(q)
        return float("nan") if v is None else float(v) / 1e6

    @property
    def lost(self) -> int:
        return int(self.gen.get("frames_lost", 0))

    @property
    def cpu_per_call_min(self) -> float:
        cpu = self.gen.get("cpu_s", {}).get("server", 0.0)
        window_min = self.gen.get("window_s", 0.0) / 60
        return cpu / (self.n * window_min) if window_min else float("nan")

    @property
    def server_cores(self) -> float:
        w = self.gen.get("window_s", 0.0)
        return self.gen.get("cpu_s", {}).get("server", 0.0) / w if w else float("nan")

    @property
    def saturated(self) -> bool:
        return self.server_cores >= SATURATED_CORES * self.workers

    def other_load(self) -> list[float]:
        """Per core, the busy share (0..1) of the window not spent by the bench's own
        processes (server, generator with the echo engine): the rest of the machine."""
        cpu = self.gen.get("cpu_s", {})
        w = self.gen.get("window_s", 0.0)
        if not w:
            return []
        busy = [cpu[k] / w for k in sorted(cpu) if k.startswith("core")]
        ours = (cpu.get("server", 0.0) + cpu.get("generator", 0.0)) / w
        return [max(0.0, b) for b in busy] + [max(0.0, sum(busy) - ours)]

    def worker_split(self) -> list[float]:
        """CPU (cores) of each server process, when there are several."""
        cpu = self.gen.get("cpu_s", {})
        w = self.gen.get("window_s", 0.0)
        if not w:
            return []
        shares = [cpu[k] / w for k in sorted(cpu) if k.startswith("pid")]
        return [c for c in shares if c >= 0.01]  # the workers, not uvicorn's supervisor

    @property
    def rss_per_call_mb(self) -> float:
        rss0, rss1 = self.gen.get("rss_bytes", [0, 0])
        return float(rss1 - rss0) / self.n / 1e6

    @property
    def gen_core(self) -> float:
        """Busy share of the generator's core (generator + echo engine CPU / window)."""
        cpu = self.gen.get("cpu_s", {})
        w = self.gen.get("window_s", 0.0)
        return (cpu.get("generator", 0.0) + cpu.get("echo", 0.0)) / w if w else float("nan")

    @property
    def lag_p99_ms(self) -> float:
        return float(self.gen.get("lateness_ns", {}).get("p99", 0.0)) / 1e6

    @property
    def fell_behind(self) -> bool:
        return self.lag_p99_ms > LAG_P99_MS or self.gen_core > CORE_BUSY

    def barge_ins(self) -> dict[str, Any]:
        """Barge-in latency (ms) and truncate correctness, joining engine and carrier records."""
        w0, w1 = self.gen.get("window", [0, 0])
        clears: dict[int, list[tuple[int, float]]] = {}
        for call, t, played in self.gen.get("clears", []):
            clears.setdefault(call, []).append((t, played))
        truncs: dict[int, list[tuple[int, int, bool]]] = {}
        for call, t, _item, end_ms, _gen, valid in self.echo.get("truncates", []):
            truncs.setdefault(call, []).append((t, end_ms, valid))
        barges: dict[int, list[int]] = {}
        for call, t, _item, _gen in self.echo.get("barge_ins", []):
            barges.setdefault(call, []).append(t)
        latencies: list[float] = []
        errors: list[float] = []
        total = correct = missing = invalid = 0
        for call, times in barges.items():
            times.sort()
            for k, tw in enumerate(times):
                if not w0 <= tw <= w1:
                    continue
                total += 1
                nxt = times[k + 1] if k + 1 < len(times) else 1 << 62
                clear = next(((t, p) for t, p in clears.get(call, []) if tw <= t < nxt), None)
                if clear is None:
                    missing += 1
                    continue
                latencies.append((clear[0] - tw) / 1e6)
                trunc = next((x for x in truncs.get(call, []) if tw <= x[0] < nxt), None)
                played = clear[1]
                if trunc is None:
                    err = played  # no truncate: right only if nothing was heard
                else:
                    err = abs(trunc[1] - played)
                    if not trunc[2]:
                        invalid += 1
                        continue
                errors.append(err)
                if err <= TRUNCATE_TOLERANCE_MS:
                    correct += 1
        out: dict[str, Any] = {
            "count": total,
            "no_clear": missing,
            "invalid_truncates": invalid,
            "truncate_correct": correct,
        }
        if latencies:
            import numpy as np

            p50, p99 = np.percentile(latencies, [50, 99])
            out |= {"p50_ms": float(p50), "p99_ms": float(p99), "max_ms": max(latencies)}
            out["truncate_err_max_ms"] = max(errors) if errors else None
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "n": self.n,
            "workers": self.workers,
            "error": self.error,
            "frames_lost": self.lost if self.ok else None,
            "rtt_ms": {q: self.rtt_ms(q) for q in ("p50", "p95", "p99", "max")},
            "barge_in": self.barge_ins(),
            "cpu_s_per_call_min": self.cpu_per_call_min,
            "server_cores": self.server_cores,
            "rss_mb_per_call": self.rss_per_call_mb,
            "generator_lag_p99_ms": self.lag_p99_ms,
            "generator_core": self.gen_core,
            "generator_fell_behind": self.fell_behind,
            "saturated": self.saturated,
            "raw": {k: v for k, v in self.gen.items() if k != "clears"},
        }


# --- processes ---------------------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all bound at once: a port released by one
    probe can come back from the next)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


#: Scheduling priority of the bench's processes (``nice``; negative needs root), so
#: other work on a shared machine disturbs the figures less. None: unchanged. Each
#: process runs in its own session, hence its own scheduler autogroup, whose nice is
#: set too: with autogroups on, a process's own nice only weighs within its group.
NICE: int | None = -10 if os.geteuid() == 0 else None


def _pin(cores: str | None) -> list[str]:
    nice = ["nice", "-n", str(NICE)] if NICE is not None else []
    return [*nice, "taskset", "-c", cores] if cores else nice


def _popen(args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Start a bench process in its own session (autogroup) at the bench's priority."""
    proc = subprocess.Popen(args, start_new_session=True, **kw)
    if NICE is not None:
        with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/autogroup", "w") as f:
            f.write(str(NICE))
    return proc


def _wait_line(proc: subprocess.Popen[bytes], prefix: bytes, timeout_s: float) -> None:
    """Wait until ``proc`` prints a line starting with ``prefix`` on stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
    raise RuntimeError(f"{proc.args!r} did not start in {timeout_s} s")


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not up in {timeout_s} s")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Bench:
    """Settings shared by every step."""

    duration_s: float = 15.0
    warmup_s: float = 2.0
    ws: str | None = None  # `switchboard serve --ws` (None: its default)
    loop: str = "uvloop"
    pin: bool = True
    prefix: str = field(default_factory=lambda: f"sbbench:{secrets.token_hex(4)}:")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sbbench-")))

    def run_step(self, server: str, n: int, workers: int = 1) -> Step:
        step = Step(server, n, workers)
        server_cores = "0" if workers == 1 else "0,1"
        gen_cores = "1"
        if not self.pin:
            server_cores = gen_cores = ""
        echo_port, port, media_port = _free_ports(3)
        tag = f"{server}-{n}-{workers}"
        log = (self.workdir / f"server-{tag}.log").open("wb")
        gen = srv = None
        try:
            # The echo engine runs inside the generator's process (one event loop on core
            # 1): two processes sharing a core would add scheduler time slices (ms) to
            # every figure. Both sides stamp CLOCK_MONOTONIC, so nothing else changes.
            gen = _popen(
                [
                    *_pin(gen_cores),
                    *(PY, "-m", "bench.loadgen", "--echo-port", str(echo_port)),
                    *("--target", f"http://127.0.0.1:{port}", "--n", str(n)),
                    *("--duration", str(self.duration_s), "--warmup", str(self.warmup_s)),
                    *("--mode", server),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _wait_line(gen, b"listening", 20)
            rt_url = f"ws://127.0.0.1:{echo_port}/v1/realtime?model=gpt-realtime"
            if server == "relay":
                srv = _popen(
                    [
                        *_pin(server_cores),
                        *(PY, "-m", "bench.relay", "--port", str(port)),
                        *("--realtime-url", rt_url),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
                _wait_line(srv, b"listening", 20)
                pids = [srv.pid]
            else:
                env = dict(os.environ)
                env.update(
                    SWITCHBOARD_ENV="dev",
                    SWITCHBOARD_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                    # the media listener: the TwiML's <Stream> is ws://127.0.0.1:PORT
                    SWITCHBOARD_MEDIA_PORT=str(media_port),
                    SWITCHBOARD_REALTIME_URL=rt_url,
                    SWITCHBOARD_REALTIME_API_KEY="bench",
                    SWITCHBOARD_REDIS_PREFIX=self.prefix,
                    SWITCHBOARD_LOG_LEVEL="INFO",
                )
                srv = _popen(
                    [
                        *_pin(server_cores),
                        *(PY, "-m", "app.cli", "serve", "--port", str(port)),
                        *("--workers", str(workers), "--loop", self.loop),
                        *(("--ws", self.ws) if self.ws else ()),
                    ],
                    stdout=log,
                    stderr=log,
                    env=env,
                )
                _wait_http(f"http://127.0.0.1:{port}/healthz", srv, 60)
                pids = [srv.pid]
                if workers > 1:
                    deadline = time.monotonic() + 30
                    while len(children(srv.pid)) < workers and time.monotonic() < deadline:
                        time.sleep(0.1)
                    pids += children(srv.pid)
            out, err = gen.communicate(
                ("go " + " ".join(map(str, pids)) + "\n").encode(),
                timeout=self.duration_s + self.warmup_s + 120,
            )
            if gen.returncode != 0:
                raise RuntimeError(f"load generator failed: {err.decode()[-2000:]}")
            step.gen = orjson.loads(out.splitlines()[-1])
            step.echo = step.gen.pop("echo", {})
        except Exception as exc:
            step.error = str(exc)
        finally:
            _stop(srv, signal.SIGINT if server == "switchboard" else signal.SIGTERM)
            _stop(gen)
            log.close()
        return step

    def cleanup_redis(self) -> None:
        """Delete the keys the bench's servers wrote (their prefix is unique to this run)."""
        import redis

        from app.settings import get_settings

        with contextlib.suppress(Exception):
            r = redis.Redis.from_url(get_settings().redis_url)
            keys = list(r.scan_iter(match=self.prefix + "*", count=1000))
            for i in range(0, len(keys), 500):
                r.delete(*keys[i : i + 500])
            r.close()


# --- report ------------------------------------------------------------------------------------

HEADER = (
    "| server | N | lost | RTT p50 | p95 | p99 | max (ms) | barge-in p50 | p99 (ms) "
    "| truncate ok | CPU s/call-min | RSS MB/call | server cores | gen lag p99 (ms) "
    "| gen core | gen behind |"
)


def _f(v: float, digits: int = 1) -> str:
    return "-" if v != v else f"{v:.{digits}f}"


def row(s: Step) -> str:
    name = s.server if s.workers == 1 else f"{s.server} ×{s.workers}"
    if not s.ok:
        return f"| {name} | {s.n} | failed: {(s.error or 'no calls connected')[:80]} |"
    b = s.barge_ins()
    trunc = f"{b['truncate_correct']}/{b['count']}" if b["count"] else "-"
    return (
        f"| {name} | {s.n} | {s.lost} | {_f(s.rtt_ms('p50'))} | {_f(s.rtt_ms('p95'))} "
        f"| {_f(s.rtt_ms('p99'))} | {_f(s.rtt_ms('max'))} | {_f(b.get('p50_ms', float('nan')))} "
        f"| {_f(b.get('p99_ms', float('nan')))} | {trunc} | {_f(s.cpu_per_call_min, 3)} "
        f"| {_f(s.rss_per_call_mb, 3)} | {_f(s.server_cores, 2)}{' sat' if s.saturated else ''} "
        f"| {_f(s.lag_p99_ms)} "
        f"| {_f(s.gen_core, 2)} | {'yes' if s.fell_behind else 'no'} |"
    )


def capacity(steps: list[Step]) -> int:
    """Highest N whose p99 round trip stays under 20 ms with no frame lost (0 if none)."""
    good = [s.n for s in steps if s.ok and s.rtt_ms("p99") < CAPACITY_P99_MS and s.lost == 0]
    return max(good, default=0)


def report(steps: list[Step], scale: list[Step], load_avg: float) -> str:
    lines = [HEADER, _sep()]
    lines += [row(s) for s in steps + scale]
    out = ["\n".join(lines), ""]
    by = {(s.server, s.n): s for s in steps}
    ratios = []
    for (server, n), s in sorted(by.items()):
        r = by.get(("relay", n))
        if server == "switchboard" and r is not None and s.ok and r.ok:
            sat = " (saturated)" if s.saturated or r.saturated else ""
            ratios.append(
                f"N={n}: {s.cpu_per_call_min:.3f} / {r.cpu_per_call_min:.3f} = "
                f"{s.cpu_per_call_min / r.cpu_per_call_min:.2f}{sat}"
            )
    if ratios:
        out.append(
            "CPU-s per call-minute, Switchboard / bare relay, same run: " + "; ".join(ratios)
        )
        out.append(
            "  (a saturated server spends its whole core whatever the calls need: its figure "
            "understates the cost)"
        )
    for server in ("switchboard", "relay"):
        mine = [s for s in steps if s.server == server]
        if mine:
            out.append(
                f"highest N with p99 < {CAPACITY_P99_MS:.0f} ms and no frame lost, "
                f"{server} on one core: {capacity(mine)}"
            )
    if scale:
        out += scale_out(steps, scale)
    loads = [
        f"{s.server}{'×2' if s.workers > 1 else ''} {s.n}: "
        + "/".join(f"{v:.2f}" for v in s.other_load()[:-1])
        + f" ({s.other_load()[-1]:.2f} other)"
        for s in steps + scale
        if s.ok
    ]
    out.append(
        f"machine: load average {load_avg:.2f} at the start; per step, busy share of core "
        "0/1 in the window (and of both cores, the part not used by the bench's server, "
        "generator and echo engine): " + ", ".join(loads)
    )
    out += targets(steps)
    return "\n".join(out)


def scale_out(steps: list[Step], scale: list[Step]) -> list[str]:
    """How capacity grows with a second worker process, and what limits it here."""
    one = [s for s in steps if s.server == "switchboard" and s.ok]
    per_core = min((s.cpu_per_call_min for s in one if not s.saturated and s.n >= 50), default=0)
    out = [
        f"scale-out: switchboard ×2 worker processes sharing the media port (a listening "
        f"socket each, SO_REUSEPORT: the kernel hands each connection to one), unpinned on both "
        f"cores together with the generator: highest N with p99 < {CAPACITY_P99_MS:.0f} ms: "
        f"{capacity(scale)} (one pinned worker: {capacity(one)})"
    ]
    for s in scale:
        if s.ok:
            split = " + ".join(f"{c:.2f}" for c in s.worker_split())
            out.append(
                f"  N={s.n}: server {s.server_cores:.2f} cores ({split}), generator+echo "
                f"{s.gen_core:.2f} core, {s.cpu_per_call_min:.3f} CPU-s/call-min, "
                f"p99 {s.rtt_ms('p99'):.1f} ms, generator behind: "
                f"{'yes' if s.fell_behind else 'no'}"
            )
    if per_core:
        out.append(
            f"  a call costs ~{per_core:.3f} CPU-s per minute whatever the worker, so each core "
            f"carries ~{0.7 * 60 / per_core:.0f} calls at 70% busy; workers share nothing but "
            "Redis, so capacity grows with cores. On this 2-core machine the generator and "
            "echo engine need most of a core at these N, so two workers get ~1.2 cores between "
            "them and the figures above are the generator's limit, not the server's."
        )
    return out


def _sep() -> str:
    return "|" + "---|" * (HEADER.count("|") - 1)


def _ok(cond: bool, miss: str = "") -> str:
    return "OK" if cond else f"MISS{' by ' + miss if miss else ''}"


def targets(steps: list[Step]) -> list[str]:
    """The issue's targets, each with its measured figure."""
    by = {(s.server, s.n): s for s in steps if s.ok}
    out = ["", "targets:"]
    pairs = [
        (n, s, by[("relay", n)])
        for (srv, n), s in by.items()
        if srv == "switchboard" and ("relay", n) in by and n >= 50
    ]
    fair = [(n, a, b) for n, a, b in pairs if not a.saturated and not b.saturated]
    if fair:
        n, a, b = max(fair, key=lambda t: t[1].cpu_per_call_min / t[2].cpu_per_call_min)
        worst = a.cpu_per_call_min / b.cpu_per_call_min
        out.append(
            f"  CPU-s per call-minute <= bare relay (N >= 50, neither saturated): worst "
            f"N={n} {a.cpu_per_call_min:.3f} vs {b.cpu_per_call_min:.3f} = {worst:.2f} "
            f"{_ok(worst <= 1, f'{worst - 1:.0%}')}"
        )
    else:
        out.append("  CPU-s per call-minute <= bare relay: no unsaturated pair measured")
    sb = by.get(("switchboard", 200))
    if sb is not None:
        p99 = sb.rtt_ms("p99")
        b99 = sb.barge_ins().get("p99_ms", float("nan"))
        miss = f"{p99 - 10:.1f} ms"
        out.append(f"  p99 round trip < 10 ms at 200 calls: {p99:.1f} ms {_ok(p99 < 10, miss)}")
        out.append(
            f"  barge-in p99 < 5 ms at 200 calls: {b99:.1f} ms {_ok(b99 < 5, f'{b99 - 5:.1f} ms')}"
        )
    else:
        out.append("  p99 round trip / barge-in at 200 calls: not measured (add 200 to --n)")
    below = [
        s
        for (srv, _), s in by.items()
        if srv == "switchboard" and not s.saturated and not s.fell_behind
    ]
    lost = sum(s.lost for s in below)
    out.append(
        f"  frames lost below saturation ({len(below)} steps): {lost} {_ok(lost == 0, str(lost))}"
    )
    rss = [s.rss_per_call_mb for (srv, n), s in by.items() if srv == "switchboard" and n >= 50]
    if rss:
        out.append(
            f"  RSS per call < 0.5 MB (N >= 50): {max(rss):.3f} MB "
            f"{_ok(max(rss) < 0.5, f'{max(rss) - 0.5:.3f} MB')}"
        )
    return out


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench load", description=__doc__)
    p.add_argument("--n", type=int, nargs="+", default=[1, 50, 100, 200, 300])
    p.add_argument("--duration", type=float, default=15.0, help="measurement window (s)")
    p.add_argument("--warmup", type=float, default=2.0, help="frames before the window (s)")
    p.add_argument("--servers", nargs="+", default=["switchboard", "relay"])
    p.add_argument("--scale-out", type=int, nargs="*", default=[200, 300, 400])
    p.add_argument("--ws", default=None, help="switchboard serve --ws (default: serve's)")
    p.add_argument("--loop", default="uvloop")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    a = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    load_avg = os.getloadavg()[0]
    bench = Bench(duration_s=a.duration, warmup_s=a.warmup, ws=a.ws, loop=a.loop)
    if cores < 2:
        print("only one core: running unpinned; figures include the generator's load")
        bench.pin = False
    print(
        f"load bench: N={a.n}, window {a.duration:.0f} s (+{a.warmup:.0f} s warm-up) per step, "
        f"servers {a.servers}, ws={a.ws or 'default'}, loop={a.loop}, load average "
        f"{os.getloadavg()[0]:.2f}; server on core 0, generator + echo engine on core 1",
        flush=True,
    )
    steps: list[Step] = []
    scale: list[Step] = []
    try:
        for server in a.servers:
            for n in a.n:
                s = bench.run_step(server, n)
                steps.append(s)
                print(row(s), flush=True)
        if cores >= 2 and "switchboard" in a.servers:
            for n in a.scale_out:
                s = bench.run_step("switchboard", n, workers=2)
                scale.append(s)
                print(row(s), flush=True)
    finally:
        bench.cleanup_redis()
    print()
    print(report(steps, scale, load_avg))
    print(f"server logs: {bench.workdir}")
    if a.json:
        a.json.write_bytes(
            orjson.dumps(
                {"steps": [s.as_json() for s in steps], "scale_out": [s.as_json() for s in scale]},
                option=orjson.OPT_INDENT_2,
            )
        )
