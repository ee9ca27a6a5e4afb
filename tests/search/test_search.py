"""Transcript search: a real call is indexed when it ends and found by what was said
(with the matching lines), within the time range and flow filters; with 200k indexed
calls a query walks only its rarest word's calls."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.search.index import SearchIndex, terms
from app.store.calls import CallStore
from app.store.event_keys import EventKeys
from app.store.keys import Keys
from tests.admin.conftest import AdminFactory, AdminStack, order_call
from tests.helpers import wait_until

T0 = 1_800_000_000_000


def test_terms() -> None:
    assert terms("What's the status of order ten forty-two? Orders shipped!") == [
        "status",
        "order",
        "ten",
        "forty",
        "two",
        "ship",
    ]
    assert terms("the and of") == []


async def test_a_call_is_found_by_what_was_said(make_admin: AdminFactory) -> None:
    admin: AdminStack = await make_admin(events_poll_ms=20)
    sid = await order_call(admin)  # the bridge emits call.ended: indexing follows

    async def search(**params: str) -> dict:  # type: ignore[type-arg]
        r = await admin.http.get("/admin/calls/search", headers=admin.read, params=params)
        assert r.status_code == 200, r.text
        body: dict = r.json()  # type: ignore[type-arg]
        return body

    async def found() -> bool:
        return bool((await search(q="shipped order"))["items"])

    await wait_until(found, 30, what="the call indexed")
    body = await search(q="shipped order")
    (hit,) = body["items"]
    assert hit["call"]["call_sid"] == sid and body["next_cursor"] is None
    assert any("shipped" in s["text"] for s in hit["snippets"])
    assert all(s["role"] in ("user", "assistant") for s in hit["snippets"])
    assert (await search(q="ships"))["items"]  # the same word, another form
    assert not (await search(q="shipped refund"))["items"]  # every word must occur
    assert not (await search(q="shipped", flow="reminder"))["items"]
    assert (await search(q="shipped", flow="support"))["items"]
    assert not (await search(q="shipped", until="2020-01-01T00:00:00"))["items"]
    r = await admin.http.get("/admin/calls/search", headers=admin.read, params={"q": "the of"})
    assert r.status_code == 422 and "searchable" in r.json()["detail"]
    assert (await admin.http.get("/admin/calls/search", params={"q": "order"})).status_code == 401


async def test_a_query_walks_only_its_rarest_word(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    n = 200_000
    keys = EventKeys(redis_prefix)
    index = SearchIndex(
        redis_client,
        keys,
        CallStore(redis_client, Keys(redis_prefix), 3600),
        retention_s=86400 * 365 * 10,
        budget=20_000,
    )
    chunk = 50_000
    for start in range(0, n, chunk):
        members = {f"CA{i:032x}": T0 + i for i in range(start, start + chunk)}
        async with redis_client.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.search_term("order"), members)  # said on every call
            pipe.zadd(keys.search_term("status"), {s: t for s, t in members.items() if t % 2})
            rare = {s: t for s, t in members.items() if (t - T0) % 1000 == 999}
            pipe.zadd(keys.search_term("refund"), rare)  # on every 1000th
            await pipe.execute()

    found: list[str] = []
    cursor = None
    examined = 0
    for _ in range(100):
        page = await index.search("refund order status", cursor=cursor, limit=50)
        found += [sid for sid, _ in page.hits]
        examined += page.examined
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(found) == len(set(found)) == 200
    assert found == sorted(found, reverse=True)  # newest first
    assert examined <= 5 * 200  # batches of the rare word's calls, never the 200k
    one = await index.search("order", limit=20)  # a common word: one batch
    assert len(one.hits) == 20 and one.examined <= 200
    ranged = await index.search("refund", since_ms=T0 + 100_000, until_ms=T0 + 110_000)
    assert [at for _, at in ranged.hits] == [T0 + i for i in range(109_999, 99_999, -1000)]
