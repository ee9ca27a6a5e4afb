"""The key scheme."""

from __future__ import annotations

import hashlib

import pytest

from app.store.keys import Keys, phone_hash


def test_key_scheme() -> None:
    k = Keys()
    assert k.call("CA1") == "sb:call:CA1"
    assert k.call_keys("CA1") == (
        "sb:call:CA1",
        "sb:call:CA1:transcript",
        "sb:call:CA1:routing",
        "sb:call:CA1:tools",
        "sb:call:CA1:status",
        "sb:call:CA1:events",
    )
    assert k.calls_by_time == "sb:calls:by_time"
    assert k.token("t") == "sb:token:t"
    assert (k.schema_version, k.schema_lock) == ("sb:schema:version", "sb:schema:lock")
    assert k.customer("A") == "sb:crm:customer:A"
    sha = hashlib.sha256(b"+15555550123").hexdigest()
    assert (
        k.customer_phone("+15555550123")
        == f"sb:crm:phone:{sha}"
        == f"sb:crm:phone:{phone_hash('+15555550123')}"
    )
    assert (k.order("1042"), k.orders_seq) == ("sb:orders:1042", "sb:orders:seq")
    assert Keys("x:").call("1") == "x:call:1"
    with pytest.raises(ValueError):
        Keys("")
