"""``/admin/dnc`` and ``is_blocked`` (the dialer's check): hashed numbers, masked output."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.admin.dnc import is_blocked
from app.store.keys import Keys, phone_hash
from tests.admin.conftest import AdminStack

NUMBER = "+15555550123"


async def test_add_list_lookup_remove(
    admin: AdminStack, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    assert not await is_blocked(redis_client, keys, NUMBER)
    r = await admin.http.post(
        "/admin/dnc", headers=admin.write, json={"number": "(555) 555-0123", "reason": "asked"}
    )
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["entry_id"] == phone_hash(NUMBER) and entry["number_masked"] == "+155****0123"
    assert entry["added_by"] == "test operator (" + admin.write_key.split("_")[1] + ")"
    assert await is_blocked(redis_client, keys, NUMBER)
    assert await is_blocked(redis_client, keys, "+1 555 555 0123")
    assert not await is_blocked(redis_client, keys, "not a number")
    # No raw number anywhere in Redis.
    for key in [k async for k in redis_client.scan_iter(match=f"{redis_prefix}dnc*")]:
        dump = str(await redis_client.hgetall(key) if key.endswith("entries") else "")
        assert NUMBER not in dump and "5555550123" not in dump

    r = await admin.http.post("/admin/dnc", headers=admin.write, json={"number": NUMBER})
    assert r.status_code == 200 and r.json()["reason"] == "asked"  # kept as it was
    assert (await admin.http.get(f"/admin/dnc/{NUMBER}", headers=admin.read)).json() == entry
    got = await admin.http.get(f"/admin/dnc/{entry['entry_id']}", headers=admin.read)
    assert got.json() == entry

    for i in range(5):
        await admin.http.post("/admin/dnc", headers=admin.write, json={"number": f"+1555000100{i}"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await admin.http.get("/admin/dnc", headers=admin.read, params=params)).json()
        assert set(body) == {"items", "next_cursor"}
        seen += [e["entry_id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6 and seen[-1] == entry["entry_id"]

    r = await admin.http.delete(f"/admin/dnc/{NUMBER}", headers=admin.write)
    assert r.status_code == 204
    assert not await is_blocked(redis_client, keys, NUMBER)
    assert (await admin.http.delete(f"/admin/dnc/{NUMBER}", headers=admin.write)).status_code == 404
    assert (await admin.http.get(f"/admin/dnc/{NUMBER}", headers=admin.read)).status_code == 404


async def test_junk_is_422(admin: AdminStack) -> None:
    r = await admin.http.post("/admin/dnc", headers=admin.write, json={"number": "call me"})
    assert r.status_code == 422
    assert (await admin.http.get("/admin/dnc/hello", headers=admin.read)).status_code == 422
    r = await admin.http.get("/admin/dnc", headers=admin.read, params={"cursor": "zzz"})
    assert r.status_code == 422
