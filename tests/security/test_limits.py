"""Bounded work per request: body limits before parsing, flow YAML checked off the event
loop within size, depth, node and time limits, and headers on every answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx

from app.admin.flows import FlowLimits, check_flow, precheck
from switchboard_sim.calls import new_call_sid
from tests.admin.conftest import AdminFactory, AdminStack
from tests.e2e.conftest import Stack
from tests.security.carrier import serve, voice_params

MB = 1024 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class _PeakRss:
    """Samples this process's RSS every 2 ms (the server runs in it) and keeps the peak."""

    def __init__(self) -> None:
        self.base = _rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_oversized_webhook_body_is_413_before_parsing(stack: Stack) -> None:
    chunk = b"&" + b"x" * (MB - 1)

    async def body() -> AsyncIterator[bytes]:
        yield voice_params(new_call_sid())["CallSid"].encode()
        for _ in range(48):
            yield chunk

    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        declared = await http.post(
            "/twilio/voice",
            content=b"x" * 100_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert declared.status_code == 413
        with _PeakRss() as rss:
            try:
                chunked = await http.post(
                    "/twilio/voice",
                    content=body(),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                status = chunked.status_code
            except httpx.HTTPError:
                status = 413  # the server answered and closed while we were still sending
    assert status == 413
    assert rss.peak - rss.base < 16 * MB, (rss.base, rss.peak)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200


async def _probe_health(base_url: str, until: asyncio.Event) -> list[float]:
    """Latency (s) of /healthz probes, one every 20 ms, until ``until`` is set."""
    times: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        while not until.is_set():
            t0 = time.perf_counter()
            r = await http.get("/healthz")
            assert r.status_code == 200
            times.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)
    return times


async def _while_probing(
    admin: AdminStack, work: Callable[[], Awaitable[httpx.Response]]
) -> tuple[httpx.Response, list[float]]:
    done = asyncio.Event()
    probes = asyncio.create_task(_probe_health(admin.stack.base_url, done))
    await asyncio.sleep(0.1)
    try:
        response = await work()
        await asyncio.sleep(0.1)
    finally:
        done.set()
    return response, await probes


async def test_large_yaml_is_refused_and_health_answers_meanwhile(admin: AdminStack) -> None:
    big = "".join(f"k{i}: {i}\n" for i in range(30_000))[: 250 * 1024]

    async def post() -> httpx.Response:
        return await admin.http.post(
            "/admin/flows/validate", headers=admin.read, json={"yaml": big}
        )

    r, probes = await _while_probing(admin, post)
    assert r.status_code == 413
    assert probes and max(probes) < 0.2, probes


async def test_yaml_at_the_limit_is_parsed_off_the_event_loop(admin: AdminStack) -> None:
    """The costliest text within the limits (as many unknown keys as the node limit lets
    through: each is a schema error) takes the parse thread a while; the loop keeps
    answering meanwhile."""
    settings = admin.stack.settings
    text = "".join(f"k{i}: {i}\n" for i in range(settings.flow_max_nodes // 2 - 1))
    assert len(text) < settings.flow_max_bytes

    async def post() -> httpx.Response:
        return await admin.http.post(
            "/admin/flows/validate", headers=admin.read, json={"yaml": text}
        )

    r, probes = await _while_probing(admin, post)
    assert r.status_code == 200 and r.json()["valid"] is False
    assert max(probes) < 0.2, probes


async def test_nesting_nodes_and_aliases_are_4xx_never_5xx(admin: AdminStack) -> None:
    deep = "name: x\ninstructions: hi\ntool_hints: " + "[" * 5000 + "]" * 5000 + "\n"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(6)
    )
    for text, expected in ((deep, "deeper"), (bomb, "aliases")):
        r = await admin.http.post("/admin/flows/validate", headers=admin.read, json={"yaml": text})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["valid"] is False and expected in body["errors"][0]["message"], body


def test_precheck_counts_expanded_aliases() -> None:
    limits = FlowLimits(max_nodes=500, max_aliases=50)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    assert precheck(bomb, limits) is None  # 1 + 2 + 10 + 1 + 90 nodes expanded
    bomb += "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"  # + 1 + 1 + 9 * 91
    assert "nodes" in (precheck(bomb, limits) or "")
    assert precheck("name: x\ninstructions: hi\n", limits) is None
    assert precheck("name: [", limits) is None  # syntax errors are the parser's to report
    _, problems = check_flow("a: " + "[" * 100 + "]" * 100, "<f>", _registry(), limits)
    assert "deeper" in problems[0].message


def _registry():  # type: ignore[no-untyped-def]
    from tools.registry import default_registry

    return default_registry()


async def test_reload_runs_off_the_loop_and_refuses_oversized_files(
    make_admin: AdminFactory, tmp_path: Path
) -> None:
    import shutil

    from flows import FLOWS_DIR

    for path in FLOWS_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    admin: AdminStack = await make_admin(flows_dir=tmp_path, flow_max_bytes=4096)
    (tmp_path / "huge.yaml").write_text("name: huge\ninstructions: |\n" + "  x\n" * 5000)
    r = await admin.http.post("/admin/flows/reload", headers=admin.write)
    assert r.status_code == 422
    assert "too large" in r.json()["problems"][0]["message"]
    (tmp_path / "huge.yaml").unlink()
    r = await admin.http.post("/admin/flows/reload", headers=admin.write)
    assert r.status_code == 200 and r.json()["ok"] is True


async def test_every_answer_is_nosniff(admin: AdminStack) -> None:
    for path, headers in (
        ("/healthz", {}),
        ("/admin/calls", admin.read),
        ("/admin/calls/CA" + "0" * 32 + "/transcript.txt", admin.read),
        ("/admin/nothing-here", {}),
    ):
        r = await admin.http.get(path, headers=headers)
        assert r.headers.get("x-content-type-options") == "nosniff", (path, r.status_code)


async def _failed_auth_then_other_ip(base_url: str) -> int:
    """One bad key from "10.0.0.1", then a request claiming "10.0.0.2": its status."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        bad = {"Authorization": "Bearer sbk_000000000000_" + "x" * 43}
        r = await http.get("/admin/calls", headers={**bad, "X-Forwarded-For": "10.0.0.1"})
        assert r.status_code == 401
        r = await http.get("/admin/calls", headers={**bad, "X-Forwarded-For": "10.0.0.2"})
        return r.status_code


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    make_admin: AdminFactory,
) -> None:
    """Failed-auth limits count by client IP: a client cannot dodge them by claiming to be
    someone else in X-Forwarded-For, unless its peer address is a configured proxy. The
    server runs with ``switchboard serve``'s options (``server_options``)."""
    from app.api.main import create_app
    from app.api.security import server_options

    admin: AdminStack = await make_admin(admin_auth_fail_max=1)
    untrusted = admin.stack.settings
    trusted = untrusted.model_copy(update={"trusted_proxies": ["127.0.0.1"]})
    assert server_options(untrusted) == {"proxy_headers": False}
    async with serve(create_app(untrusted), **server_options(untrusted)) as base_url:
        assert await _failed_auth_then_other_ip(base_url) == 429  # both are 127.0.0.1
    await admin.stack.redis.delete(
        *[
            k
            async for k in admin.stack.redis.scan_iter(
                match=untrusted.redis_prefix + "admin:authfail:*"
            )
        ]
    )
    async with serve(create_app(trusted), **server_options(trusted)) as base_url:
        assert await _failed_auth_then_other_ip(base_url) == 401  # told apart by the proxy
