"""Run an ASGI app with uvicorn inside the current event loop (loopback test servers)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

#: How long ``start()`` waits for the socket to be listening (s).
START_TIMEOUT_S = 10.0


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The host process owns signal handling; an embedded server must not take it.
        yield


def bind_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port=0``: any free one), not yet listening.

    ``IPPROTO_TCP`` explicitly, so asyncio sets ``TCP_NODELAY`` on accepted connections.
    Raises ``OSError`` (``errno.EADDRINUSE`` when the port is taken).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class LoopbackServer:
    """An ASGI ``app`` served by uvicorn as a task of the running loop.

    ``port=0`` picks a free port; :attr:`port` / :attr:`base_url` tell which after
    :meth:`start`.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ws_max_size=1 << 20,
        )
        self._server = _InLoopServer(config)
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (valid after :meth:`start`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start serving; returns once the socket listens. Raises ``OSError`` when the
        address cannot be bound (e.g. the port is in use), RuntimeError if uvicorn fails."""
        self._sock = bind_tcp(self.host, self.port)
        self.port = int(self._sock.getsockname()[1])
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._sock]), name="loopback-uvicorn"
        )
        async with asyncio.timeout(START_TIMEOUT_S):
            while not self._server.started:
                if self._task.done():
                    self._close_socket()
                    raise RuntimeError(f"server on {self.host}:{self.port} failed to start")
                await asyncio.sleep(0.01)

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def stop(self) -> None:
        """Stop serving and wait for the server task."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            self._close_socket()
