"""The key scheme: a call's keys, token and index entries share its shard's hash tag."""

from __future__ import annotations

import hashlib

import pytest

from app.store.keys import CALL_SHARD_TAGS, CALL_SHARDS, Keys, call_shard, phone_hash


def _slot_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes (the first ``{…}``, else all of it)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else key


def test_key_scheme() -> None:
    k = Keys()
    shard = call_shard("CA1")
    assert shard in CALL_SHARD_TAGS and call_shard("CA1") == shard  # stable
    assert k.call("CA1") == f"sb:call:{{{shard}}}:CA1"
    assert k.call_keys("CA1") == (
        f"sb:call:{{{shard}}}:CA1",
        f"sb:call:{{{shard}}}:CA1:transcript",
        f"sb:call:{{{shard}}}:CA1:routing",
        f"sb:call:{{{shard}}}:CA1:tools",
        f"sb:call:{{{shard}}}:CA1:status",
        f"sb:call:{{{shard}}}:CA1:events",
    )
    assert k.calls_by_time(shard) == k.calls_by_time_of("CA1") == f"sb:calls:{{{shard}}}:by_time"
    assert k.call_index("flow", "support", shard) == f"sb:calls:{{{shard}}}:idx:flow:support"
    assert k.token(f"{shard}.t") == f"sb:token:{{{shard}}}:{shard}.t"
    assert k.token("t") == "sb:token:t"  # no shard: never issued
    assert (k.schema_version, k.schema_lock) == ("sb:schema:version", "sb:schema:lock")
    assert k.customer("A") == "sb:crm:customer:A"
    sha = hashlib.sha256(b"+15555550123").hexdigest()
    assert (
        k.customer_phone("+15555550123")
        == f"sb:crm:phone:{sha}"
        == f"sb:crm:phone:{phone_hash('+15555550123')}"
    )
    assert (k.order("1042"), k.orders_seq) == ("sb:orders:1042", "sb:orders:seq")
    assert Keys("x:").call("1") == f"x:call:{{{call_shard('1')}}}:1"
    with pytest.raises(ValueError):
        Keys("")
    with pytest.raises(ValueError):
        Keys("{sb}:")  # the prefix would capture every key's hash tag


def test_everything_one_call_touches_is_in_one_slot() -> None:
    k = Keys()
    sid = "CA" + "7" * 32
    shard = call_shard(sid)
    keys = [
        *k.call_keys(sid),
        k.call_token(sid),
        k.callback_order(sid),
        k.calls_by_time_of(sid),
        k.call_index("status", "completed", shard),
        k.call_index("number", phone_hash("+15555550123"), shard),
        k.live_calls_of(sid),
        k.live_call(sid),
    ]
    assert {_slot_tag(key) for key in keys} == {shard}


def test_calls_spread_over_every_shard() -> None:
    counts: dict[str, int] = {}
    for n in range(CALL_SHARDS * 100):
        shard = call_shard(f"CA{n:032x}")
        counts[shard] = counts.get(shard, 0) + 1
    assert set(counts) == set(CALL_SHARD_TAGS)
    assert max(counts.values()) < 2 * min(counts.values())
