"""``/admin/calls`` over the real server and Redis: filters, cursor pages, details, exports."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from app.phone import mask
from app.store.calls import CallStore
from tests.admin.conftest import AdminStack

T0 = 1_800_000_000_000  # epoch ms
NUMBERS = ["+15555550101", "+15555550102", "+15555550103"]


def sid(i: int) -> str:
    return f"CA{i:032x}"


async def seed(store: CallStore, n: int = 60) -> list[dict[str, Any]]:
    """``n`` calls, two per millisecond (ties), with cycling attributes."""
    made = []
    for i in range(n):
        call = {
            "call_sid": sid(i),
            "direction": "inbound" if i % 2 == 0 else "outbound",
            "from_number": NUMBERS[i % 3],
            "to_number": "+15550100000",
            "flow": "support" if i % 4 < 2 else "sales",
            "status": "ringing",
            "created_at_ms": T0 + (i // 2),
            "extra": {"campaign": "spring"} if i % 5 == 0 else None,
        }
        await store.create_call(**call)
        made.append(call)
    return made


async def pages(admin: AdminStack, params: dict[str, Any]) -> list[list[str]]:
    """Follow next_cursor to the end; the SIDs of each page."""
    out: list[list[str]] = []
    cursor = None
    for _ in range(1000):
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        r = await admin.http.get("/admin/calls", headers=admin.read, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        out.append([c["call_sid"] for c in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("pagination did not end")


def expected(made: list[dict[str, Any]], pred: Any) -> list[str]:
    chosen = [c for c in made if pred(c)]
    chosen.sort(key=lambda c: (c["created_at_ms"], c["call_sid"]), reverse=True)
    return [c["call_sid"] for c in chosen]


async def test_filters_and_cursor_pages(admin: AdminStack) -> None:
    made = await seed(admin.stack.store)
    cases: list[tuple[dict[str, Any], Any]] = [
        ({}, lambda c: True),
        ({"direction": "outbound"}, lambda c: c["direction"] == "outbound"),
        (
            {"flow": "sales", "direction": "inbound"},
            lambda c: c["flow"] == "sales" and c["direction"] == "inbound",
        ),
        ({"campaign": "spring"}, lambda c: "extra" in c and c["extra"] is not None),
        # Any spelling of the number matches its normalised hash.
        ({"number": "(555) 555-0102"}, lambda c: c["from_number"] == NUMBERS[1]),
        ({"number": "+1 555 010 0000", "flow": "support"}, lambda c: c["flow"] == "support"),
        ({"since": T0 + 5, "until": T0 + 9}, lambda c: T0 + 5 <= c["created_at_ms"] <= T0 + 9),
        ({"status": "ringing", "until": T0 + 3}, lambda c: c["created_at_ms"] <= T0 + 3),
        ({"flow": "nope"}, lambda c: False),
    ]
    for params, pred in cases:
        for limit in (7, 50):
            got = await pages(admin, {**params, "limit": limit})
            flat = list(itertools.chain.from_iterable(got))
            assert flat == expected(made, pred), (params, limit)
            assert all(len(p) <= limit for p in got)


async def test_small_scan_budget_still_finds_everything(make_admin: Any) -> None:
    admin: AdminStack = await make_admin(calls_scan_budget=100)
    made = await seed(admin.stack.store, 400)
    # flow=sales & inbound & campaign: sparse; pages may come back short but complete.
    params = {"flow": "sales", "direction": "inbound", "campaign": "spring", "limit": 5}
    flat = list(itertools.chain.from_iterable(await pages(admin, params)))
    want = expected(
        made,
        lambda c: c["flow"] == "sales" and c["direction"] == "inbound" and c["extra"] is not None,
    )
    assert flat == want and want


async def test_status_index_follows_updates(admin: AdminStack) -> None:
    store = admin.stack.store
    await seed(store, 4)
    await store.update_call(sid(1), status="ended")
    await store.update_call(sid(2), status="ended", flow="sales")
    ended = await pages(admin, {"status": "ended"})
    assert ended == [[sid(2), sid(1)]]
    assert await pages(admin, {"status": "ringing"}) == [[sid(3), sid(0)]]
    assert sid(2) in (await pages(admin, {"flow": "sales"}))[0]
    assert sid(2) not in (await pages(admin, {"flow": "support"}))[0]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"number": "hello"},
        {"direction": "sideways"},
        {"limit": 0},
        {"limit": 201},
        {"since": "yesterday"},
    ],
)
async def test_bad_queries_are_422(admin: AdminStack, params: dict[str, Any]) -> None:
    r = await admin.http.get("/admin/calls", headers=admin.read, params=params)
    assert r.status_code == 422, r.text


async def test_call_detail_export_and_transcript(admin: AdminStack) -> None:
    store = admin.stack.store
    s = sid(7)
    await store.create_call(
        call_sid=s,
        direction="inbound",
        from_number="+15555550123",
        to_number="+15550100000",
        flow="support",
        status="ringing",
        created_at_ms=T0,
    )
    await store.append_transcript(
        s,
        role="assistant",
        text="Thanks for calling.",
        item_id="a",
        offset_ms=200,
        interrupted=True,
    )
    await store.append_transcript(
        s,
        role="user",
        text="Where is order 1042?",
        item_id="u",
        offset_ms=61_500,
        interrupted=False,
    )
    await store.append_routing(
        s, flow="support", reason="number_match", target="flow:support", at_ms=T0
    )
    await store.append_tool_call(
        s,
        name="get_order_status",
        call_id="fc1",
        arguments='{"order_id":"1042"}',
        result={"status": "shipped"},
        error=None,
        duration_ms=12.5,
        at_ms=T0 + 70_000,
    )
    await store.add_usage(
        s,
        {
            "total_tokens": 3_000_000,
            "input_tokens": 2_000_000,
            "output_tokens": 1_000_000,
            "input_token_details": {"audio_tokens": 1_000_000, "cached_tokens": 500_000},
            "output_token_details": {"audio_tokens": 800_000},
        },
    )
    await store.update_call(
        s,
        status="ended",
        ended_at_ms=T0 + 90_000,
        end_reason="hangup: caller finished",
        turn_latencies_ms=orjson.dumps([900, 500, 700]).decode(),
    )
    r = await admin.http.get(f"/admin/calls/{s}", headers=admin.read)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["call"]["from_masked"] == mask("+15555550123") and "+15555550123" not in r.text
    assert d["call"]["duration_s"] == 90.0 and d["live"] is None
    assert [t["interrupted"] for t in d["transcript"]] == [True, False]
    assert d["routing"][0]["reason"] == "number_match"
    assert d["tool_calls"][0]["result"] == {"status": "shipped"}
    assert (
        d["usage"]["input_text_tokens"] == 500_000 and d["usage"]["output_text_tokens"] == 200_000
    )
    # 0.5M text in × $4 + 0.5M cached × $0.4 + 1M audio in × $32 + 0.2M text out × $16
    # + 0.8M audio out × $64 = 2 + 0.2 + 32 + 3.2 + 51.2
    assert d["cost"]["total_usd"] == pytest.approx(88.6)
    assert d["turn_latency"] == {
        "turns_ms": [900, 500, 700],
        "count": 3,
        "mean_ms": 700.0,
        "p50_ms": 700,
        "p95_ms": 900,
        "max_ms": 900,
    }

    r = await admin.http.get(f"/admin/calls/{s}/export", headers=admin.read)
    assert r.headers["content-disposition"] == f'attachment; filename="{s}.json"'
    assert r.json() == d

    r = await admin.http.get(f"/admin/calls/{s}/transcript.txt", headers=admin.read)
    assert r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[0] == f"Call {s}"
    assert lines[-2:] == [
        "[00:00.2] Agent: Thanks for calling. [interrupted]",
        "[01:01.5] Caller: Where is order 1042?",
    ]
    for path in ("", "/export", "/transcript.txt"):
        r = await admin.http.get(f"/admin/calls/{sid(999)}{path}", headers=admin.read)
        assert r.status_code == 404


async def test_backfill_indexes_old_calls(admin: AdminStack) -> None:
    """Calls stored before the indexes existed become filterable after a backfill."""
    store = admin.stack.store
    made = await seed(store, 10)
    keys, redis = store.keys, store.redis
    await redis.delete(*[k async for k in redis.scan_iter(match=keys.call_index("*", "*", "*"))])
    assert await pages(admin, {"flow": "sales"}) == [[]]
    assert await store.backfill_indexes(batch=3) == 10
    assert await store.backfill_indexes() == 10  # idempotent
    got = await pages(admin, {"flow": "sales", "number": NUMBERS[0]})
    assert got == [
        expected(made, lambda c: c["flow"] == "sales" and c["from_number"] == NUMBERS[0])
    ]
