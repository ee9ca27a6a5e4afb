"""Admin auth over the real server: 401 without a valid key, 403 without the scope,
429 after too many failures from one address, and keys never reach the logs."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis

from app.admin.keys import ApiKeys, parse_key
from app.store.keys import Keys
from tests.admin.conftest import AdminFactory, AdminStack

_SAFE = {"GET", "HEAD", "OPTIONS"}
#: POSTs that change nothing (allowed with a read key).
_READ_ONLY_POSTS = {"/admin/flows/validate"}


def _admin_routes(admin: AdminStack) -> list[tuple[str, str]]:
    """Every documented (method, path) under /admin, with sample path parameters."""
    out = []
    for path, ops in admin.stack.app.openapi()["paths"].items():
        if not path.startswith("/admin") or path.startswith("/admin/ui"):
            continue
        path = (
            path.replace("{call_sid}", "CA" + "1" * 32)
            .replace("{name}", "support")
            .replace("{entry}", "+15555550123")
        )
        out += [(m.upper(), path) for m in sorted(ops)]
    return out


async def test_every_admin_endpoint_needs_a_key(make_admin: AdminFactory) -> None:
    admin: AdminStack = await make_admin(admin_auth_fail_max=1000)
    routes = _admin_routes(admin)
    assert len(routes) >= 15
    for method, path in routes:
        r = await admin.http.request(method, path)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        for bad in ("nope", "sbk_000000000000_" + "A" * 43, admin.read_key[:-1] + "x"):
            r = await admin.http.request(method, path, headers={"X-API-Key": bad})
            assert r.status_code == 401, (method, path, bad[:8])


async def test_a_read_key_cannot_change_anything(admin: AdminStack) -> None:
    unsafe = [
        (m, p) for m, p in _admin_routes(admin) if m not in _SAFE and p not in _READ_ONLY_POSTS
    ]
    assert {p.rsplit("/", 1)[-1] for _, p in unsafe} >= {"hangup", "transfer", "say", "reload"}
    for method, path in unsafe:
        r = await admin.http.request(method, path, headers=admin.read, json={})
        assert r.status_code == 403, (method, path, r.status_code)
        assert r.json() == {
            "detail": "this API key lacks the write scope",
            "code": "scope_missing",
        }
    # Nothing changed: e.g. the DNC list is still empty.
    r = await admin.http.get("/admin/dnc", headers=admin.read)
    assert r.json() == {"items": [], "next_cursor": None}


async def test_both_headers_and_whoami(admin: AdminStack) -> None:
    for headers in (admin.read, {"X-API-Key": admin.read_key}):
        r = await admin.http.get("/admin/keys/me", headers=headers)
        assert r.status_code == 200
        assert r.json()["scope"] == "read" and r.json()["via"] == "header"
    r = await admin.http.get("/admin/keys/me", headers=admin.write)
    assert r.json()["scope"] == "write" and r.json()["name"] == "test operator"


async def test_revoked_key_is_401(
    admin: AdminStack, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    keys = ApiKeys(redis_client, Keys(redis_prefix))
    key, raw = await keys.create("temp", "write")
    headers = {"Authorization": f"Bearer {raw}"}
    assert (await admin.http.get("/admin/keys/me", headers=headers)).status_code == 200
    await keys.revoke(key.key_id)
    assert (await admin.http.get("/admin/keys/me", headers=headers)).status_code == 401
    stored = await redis_client.hgetall(Keys(redis_prefix).admin_key(key.key_id))
    parsed = parse_key(raw)
    assert parsed is not None and parsed[1] not in str(stored)  # only the hash is kept


async def test_failures_are_rate_limited_and_logged_without_the_key(
    make_admin: AdminFactory, caplog: pytest.LogCaptureFixture
) -> None:
    admin: AdminStack = await make_admin(admin_auth_fail_max=3, admin_auth_fail_window_s=60)
    wrong = admin.write_key[:-4] + "zzzz"
    with caplog.at_level(logging.WARNING, logger="app.api.auth"):
        for _ in range(3):
            r = await admin.http.get("/admin/live", headers={"X-API-Key": wrong})
            assert r.status_code == 401
    r = await admin.http.get("/admin/live", headers=admin.write)  # even a good key now
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
    logged = caplog.text
    assert "reason=bad_secret" in logged and "ip=127.0.0.1" in logged
    secret = wrong.split("_", 2)[2]
    assert secret not in logged and admin.write_key.split("_", 2)[2] not in logged
