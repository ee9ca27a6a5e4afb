"""Run an ASGI app with uvicorn inside the current event loop (loopback test servers)."""

from __future__ import annotations

import asyncio
import contextlib
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

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (valid after :meth:`start`)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start serving; returns once the socket listens. Raises RuntimeError if it fails."""
        self._task = asyncio.create_task(self._server.serve(), name="loopback-uvicorn")
        async with asyncio.timeout(START_TIMEOUT_S):
            while not self._server.started:
                if self._task.done():
                    raise RuntimeError(f"server on {self.host}:{self.port} failed to start")
                await asyncio.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop serving and wait for the server task."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
