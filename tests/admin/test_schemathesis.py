"""Schemathesis against the running server's own OpenAPI schema: no request, valid or not,
with or without a key, may produce a 5xx; answers match the documented status codes,
content types and response schemas."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

from app.api.main import create_app
from tests.admin.conftest import AdminFactory, AdminStack

ST = Path(sys.executable).with_name("st")
CHECKS = os.environ.get(
    "SWITCHBOARD_ST_CHECKS",
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance",
)


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on a free loopback port (bound by host/port, so accepted
    sockets get TCP_NODELAY: keep-alive requests are not held up by Nagle)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_no_5xx_and_conforming_answers(make_admin: AdminFactory, tmp_path: Path) -> None:
    admin: AdminStack = await make_admin(admin_auth_fail_max=1_000_000)
    # A second instance of the app on the stack's settings (same Redis, engine, simulator).
    async with serve(create_app(admin.stack.settings)) as base_url:
        text, returncode = await run_schemathesis(base_url, admin.write_key, tmp_path)
    report = os.environ.get("SWITCHBOARD_ST_REPORT")
    if report:
        await asyncio.to_thread(Path(report).write_text, text)
    assert returncode == 0, text[-12000:]


async def run_schemathesis(base_url: str, key: str, cwd: Path) -> tuple[str, int | None]:
    proc = await asyncio.create_subprocess_exec(
        str(ST),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        os.environ.get("SWITCHBOARD_ST_EXAMPLES", "15"),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",  # CPython 3.11's ast.parse is not thread-safe under hypothesis' lambda reprs
        "--seed",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
    )
    out, _ = await proc.communicate()
    return out.decode(errors="replace"), proc.returncode
