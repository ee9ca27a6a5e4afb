"""The demo CRM and orders: two customers of "Acme", three orders, the order id counter
at 2000 (``switchboard seed-demo``; ``make demo`` and the tests use it).

Demo data, never written by a migration: a production deployment starts with an empty
CRM. Deployments migrated before the seed left migration 0001 hold these records;
``switchboard seed-demo --remove`` deletes them (:func:`remove_demo`).

Keys (see ``app/store/keys.py``): ``{p}crm:customer:{account_id}`` (hash),
``{p}crm:phone:{sha}`` (string: the account id), ``{p}orders:{order_id}`` (hash),
``{p}orders:seq`` (the last order id handed out).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from app.store.backends import ORDERS_SEQ_START, customer_record
from app.store.keys import Keys

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


async def seed_demo(redis: aioredis.Redis, keys: Keys) -> None:
    """Write the demo records in one transaction, overwriting them (safe to re-run).

    The order id counter is only ever raised to ``ORDERS_SEQ_START``, never moved back.
    Raises ``redis.exceptions.RedisError`` when Redis fails.
    """
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
    seq = await redis.get(keys.orders_seq)
    if seq is None or int(seq) < ORDERS_SEQ_START:
        await redis.set(keys.orders_seq, ORDERS_SEQ_START)


async def remove_demo(redis: aioredis.Redis, keys: Keys) -> int:
    """Delete the demo customers, their phone index entries (those still pointing at a
    demo account) and the demo orders; return how many keys were deleted. Other records
    and the order id counter are left alone.

    Raises ``redis.exceptions.RedisError`` when Redis fails.
    """
    names = [keys.customer(account_id) for account_id, *_ in CUSTOMERS]
    names += [keys.order(order_id) for order_id, *_ in ORDERS]
    for account_id, _, e164, _ in CUSTOMERS:
        phone = keys.customer_phone(e164)
        owner = await redis.get(phone)
        if isinstance(owner, bytes):
            owner = owner.decode()
        if owner == account_id:
            names.append(phone)
    return int(await redis.delete(*names))
