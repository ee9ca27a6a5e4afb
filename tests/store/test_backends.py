"""Redis CRM/orders backends against real Redis (seeded with the demo CRM, app/demo.py)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from app.demo import seed_demo
from app.store.backends import RedisCustomers, RedisOrders
from app.store.keys import Keys

DAY_MS = 86_400_000
NOV_1_2026_MS = 1_793_491_200_000


@pytest.fixture
async def keys(redis_client: aioredis.Redis, redis_prefix: str) -> Keys:
    keys = Keys(redis_prefix)
    await seed_demo(redis_client, keys)
    return keys


async def test_customer_by_phone_and_account(redis_client: aioredis.Redis, keys: Keys) -> None:
    customers = RedisCustomers(redis_client, keys)
    dana = await customers.by_phone("+15555550123")
    assert dana == {
        "account_id": "ACME-1001",
        "name": "Dana Whitaker",
        "phone_masked": "+155****0123",
        "tier": "gold",
    }
    assert await customers.by_account("ACME-1002") is not None
    assert await customers.by_phone("+15555550000") is None
    assert await customers.by_account("ACME-9999") is None


async def test_customer_put(redis_client: aioredis.Redis, keys: Keys) -> None:
    customers = RedisCustomers(redis_client, keys)
    await customers.put(
        account_id="ACME-2000",
        name="Sam Roe",
        e164="+15555550999",
        tier="silver",
        email="sam@example.com",
    )
    sam = await customers.by_phone("+15555550999")
    assert sam is not None and sam["email"] == "sam@example.com"
    assert "15555550999" not in repr(await redis_client.hgetall(keys.customer("ACME-2000")))


async def test_orders_get_and_create(redis_client: aioredis.Redis, keys: Keys) -> None:
    orders = RedisOrders(redis_client, keys, clock_ms=lambda: NOV_1_2026_MS + DAY_MS // 2)
    order = await orders.get("1042")
    assert order is not None
    assert order["status"] == "shipped"
    assert order["quantity"] == 1 and isinstance(order["created_at_ms"], int)
    assert order["delivery_date"] == "2026-11-24"
    assert await orders.get("9999") is None

    first = await orders.create("ACME-1001", " tamper ", 2)
    second = await orders.create("ACME-1001", "scale", 1)
    assert first["order_id"] == "2001" and second["order_id"] == "2002"
    assert first["item"] == "tamper"
    assert first["status"] == "processing"
    assert first["delivery_date"] == "2026-11-06"
    assert await orders.get("2001") == first
    with pytest.raises(ValueError):
        await orders.create("ACME-1001", "x", 0)


async def test_create_without_migration_starts_above_seed(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    orders = RedisOrders(redis_client, Keys(redis_prefix + "bare:"))
    created = await orders.create("ACME-1", "cup", 1)
    assert created["order_id"] == "2001"
