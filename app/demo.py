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
from app.store.redis import Group, transact

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


def _replace_hash(key: str, mapping: dict[FieldT, EncodableT]) -> Group:
    return lambda p: (p.delete(key), p.hset(key, mapping=mapping))


def _set(key: str, value: str) -> Group:
    return lambda p: p.set(key, value)


async def seed_demo(redis: aioredis.Redis, keys: Keys) -> None:
    """Write the demo records in one transaction (one per record and index entry on a
    Redis Cluster, whose keys are in different slots), overwriting them (safe to re-run).

    The order id counter is only ever raised to ``ORDERS_SEQ_START``, never moved back.
    Raises ``redis.exceptions.RedisError`` when Redis fails.
    """
    groups: list[Group] = []
    for account_id, name, e164, tier in CUSTOMERS:
        record = customer_record(account_id=account_id, name=name, e164=e164, tier=tier)
        customer: dict[FieldT, EncodableT] = {k: v for k, v in record.items()}
        groups.append(_replace_hash(keys.customer(account_id), customer))
        groups.append(_set(keys.customer_phone(e164), account_id))
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
        groups.append(_replace_hash(keys.order(order_id), order))
    groups.append(lambda p: p.set(keys.orders_seq, ORDERS_SEQ_START, nx=True))
    await transact(redis, groups)
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
