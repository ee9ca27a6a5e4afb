"""Test helpers that hold on a loaded machine: waits on conditions (never fixed sleeps)
and a private ``redis-server`` for tests that stall, pause or restart Redis.

``wait_until`` replaces "sleep a while and hope it happened": it returns as soon as the
condition holds, so its deadline can be generous (a busy CPU only makes it slower, never
wrong). ``RedisServer`` is a real ``redis-server`` process on its own free loopback port
with its data in a temporary directory; the ``redis_server`` fixture in tests/conftest.py
starts them and tears them down after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import shutil
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

#: Default deadline of ``wait_until`` (s): generous, it costs nothing when the condition holds.
WAIT_TIMEOUT_S = 30.0
#: How often ``wait_until`` checks (s).
WAIT_INTERVAL_S = 0.02
#: How long a ``redis-server`` may take to answer PING after it was started (s).
REDIS_START_TIMEOUT_S = 30.0
#: How long a ``redis-server`` may take to exit after SIGTERM before it is killed (s).
REDIS_STOP_TIMEOUT_S = 10.0

Predicate = Callable[[], bool | Awaitable[bool]]


async def wait_until(
    predicate: Predicate,
    timeout_s: float = WAIT_TIMEOUT_S,
    *,
    interval_s: float = WAIT_INTERVAL_S,
    what: str | None = None,
) -> None:
    """Return once ``predicate()`` (a function or a coroutine function) is true.

    Checks at once, then every ``interval_s``; raises ``AssertionError`` naming ``what``
    (or the predicate) if it still does not hold after ``timeout_s`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            name = what or getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"condition did not hold within {timeout_s:g} s: {name}")
        await asyncio.sleep(interval_s)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (outbound connections' source
    ports); 32768 where it cannot be read."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports free on ``host`` right now (all bound at once, then
    released, so none is handed out twice), taken at random below the ephemeral range:
    an outbound connection of any process (parallel test workers make many) never gets
    one as its source port before the server that is meant to bind it does."""
    low = _ephemeral_low()
    if low - 10_000 >= 1024:
        for _ in range(50):
            ports = random.sample(range(low - 10_000, low), n)
            socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in ports]
            try:
                for s, port in zip(socks, ports, strict=True):
                    s.bind((host, port))
                return ports
            except OSError:
                continue
            finally:
                for s in socks:
                    s.close()
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class RedisServer:
    """A ``redis-server`` of a test's own: ``127.0.0.1:port``, no persistence by default.

    ``directory`` holds its working files and ``redis.log``; ``args`` are extra
    ``redis-server`` options (e.g. ``("--appendonly", "yes")`` for a durability test).
    :meth:`start` waits until it answers PING; :meth:`stop`, :meth:`restart` (same port,
    same directory) and :meth:`freeze` / :meth:`thaw` (SIGSTOP / SIGCONT: a backend that
    stalls with its connections still open) let a test break it on purpose.
    """

    def __init__(self, directory: Path, args: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.args = args
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def _command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs it)")
        return [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.log_path),
            "--daemonize",
            "no",
            *self.args,
        ]

    async def start(self, attempts: int = 5) -> None:
        """Start it (on a new free port unless it had one) and wait for PING.

        Retries on a fresh port if the chosen one was taken meanwhile; raises
        ``RuntimeError`` with the end of ``redis.log`` if it never answers.
        """
        if self.process is not None:
            raise RuntimeError("redis-server is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        keep_port = self.port != 0
        problem = ""
        for _ in range(attempts):
            if not keep_port:
                self.port = free_port()
            self.process = await asyncio.create_subprocess_exec(
                *self._command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            problem = await self._wait_ready()
            if not problem:
                return
            await self._reap()
            if keep_port:
                await asyncio.sleep(0.2)  # the old process's socket may linger a moment
        raise RuntimeError(f"redis-server did not start: {problem}\n{self._log_tail()}")

    async def _wait_ready(self) -> str:
        """'' once it answers PING; else why not (it exited / never answered)."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REDIS_START_TIMEOUT_S
        client = aioredis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while loop.time() < deadline:
                if self.process.returncode is not None:
                    return f"exited with {self.process.returncode}"
                with contextlib.suppress(aioredis.RedisError, OSError):
                    if await client.ping():
                        return ""
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        return f"no PONG within {REDIS_START_TIMEOUT_S:g} s"

    async def _reap(self) -> None:
        p, self.process = self.process, None
        if p is None:
            return
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        await p.wait()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no redis.log)"

    def _signal(self, sig: int) -> None:
        if self.process is None or self.process.returncode is not None:
            raise RuntimeError("redis-server is not running")
        os.kill(self.process.pid, sig)

    def freeze(self) -> None:
        """SIGSTOP: every command (and new connection's handshake) waits until :meth:`thaw`."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: a frozen server answers again, in order."""
        self._signal(signal.SIGCONT)
        self.frozen = False

    async def stop(self) -> None:
        """SIGTERM (after SIGCONT if frozen) and wait; SIGKILL after ``REDIS_STOP_TIMEOUT_S``."""
        p = self.process
        if p is None:
            return
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                if self.frozen:
                    p.send_signal(signal.SIGCONT)
                p.terminate()
            try:
                async with asyncio.timeout(REDIS_STOP_TIMEOUT_S):
                    await p.wait()
            except TimeoutError:
                p.kill()
                await p.wait()
        self.frozen = False
        self.process = None

    async def kill(self) -> None:
        """SIGKILL: a crash (nothing flushed, no shutdown)."""
        await self._reap()
        self.frozen = False

    async def restart(self) -> None:
        """Stop, then start again on the same port with the same directory."""
        await self.stop()
        await self.start()


RedisServerFactory = Callable[..., Awaitable[RedisServer]]
