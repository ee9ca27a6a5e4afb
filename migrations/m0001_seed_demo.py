"""Seed the demo CRM: two customers, three orders, and the order id counter at 2000."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from app.store.backends import ORDERS_SEQ_START, customer_record
from app.store.keys import Keys

VERSION = 1
DESCRIPTION = "seed demo customers ACME-1001/1002 and orders 1042-1044"

#: (account_id, name, e164, tier)
CUSTOMERS = (
    ("ACME-1001", "Dana Whitaker", "+15555550123", "gold"),
    ("ACME-1002", "Lee Park", "+15555550188", "standard"),
)
#: (order_id, account_id, item, quantity, status, delivery_date)
ORDERS = (
    ("1042", "ACME-1001", "espresso machine", 1, "shipped", "2026-11-24"),
    ("1043", "ACME-1001", "coffee grinder", 1, "processing", "2026-11-28"),
    ("1044", "ACME-1002", "milk frother", 2, "delivered", "2026-11-18"),
)
#: Fixed creation time of the seeded orders (2026-11-01T00:00:00Z), so reruns are identical.
SEEDED_AT_MS = 1_793_491_200_000


async def up(redis: aioredis.Redis, keys: Keys) -> None:
    """Write the demo records (overwriting them: safe to re-run) in one transaction."""
    async with redis.pipeline(transaction=True) as pipe:
        for account_id, name, e164, tier in CUSTOMERS:
            record = customer_record(account_id=account_id, name=name, e164=e164, tier=tier)
            customer: dict[FieldT, EncodableT] = {k: v for k, v in record.items()}
            pipe.delete(keys.customer(account_id))
            pipe.hset(keys.customer(account_id), mapping=customer)
            pipe.set(keys.customer_phone(e164), account_id)
        for order_id, account_id, item, quantity, status, delivery in ORDERS:
            order: dict[FieldT, EncodableT] = {
                "order_id": order_id,
                "account_id": account_id,
                "item": item,
                "quantity": quantity,
                "status": status,
                "delivery_date": delivery,
                "created_at_ms": SEEDED_AT_MS,
            }
            pipe.delete(keys.order(order_id))
            pipe.hset(keys.order(order_id), mapping=order)
        pipe.set(keys.orders_seq, ORDERS_SEQ_START, nx=True)
        await pipe.execute()
    # Never move the counter backwards; only raise it to the start if it is lower.
    seq = await redis.get(keys.orders_seq)
    if seq is None or int(seq) < ORDERS_SEQ_START:
        await redis.set(keys.orders_seq, ORDERS_SEQ_START)
