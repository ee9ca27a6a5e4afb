"""Redis implementations of the ``Customers`` and ``Orders`` tool backends (tools/base.py).

Customer dict: ``{account_id, name, phone_masked, tier, email?}`` (all ``str``).
Order dict: ``{order_id, account_id, item, quantity: int, status, delivery_date,
created_at_ms: int}`` with ``status`` one of ``ORDER_STATUSES`` and ``delivery_date``
an ISO date (``2026-11-24``).
Keys: ``crm:customer:{account_id}``, ``crm:phone:{sha256(e164)}``, ``orders:{order_id}``,
``orders:seq`` (see ``app.store.keys``). Methods raise ``StoreError`` when Redis fails or
a record is malformed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from app.errors import StoreError
from app.phone import mask
from app.store.keys import Keys
from app.store.redis import transact

ORDER_STATUSES = ("processing", "shipped", "delivered", "cancelled")
#: The first id ``RedisOrders.create`` hands out is above this (migration m0001 sets it).
ORDERS_SEQ_START = 2000

_CUSTOMER_FIELDS = ("account_id", "name", "phone_masked", "tier", "email")
_ORDER_INT_FIELDS = ("quantity", "created_at_ms")


def _strs(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}


def now_ms() -> int:
    """Unix epoch time in milliseconds."""
    return time.time_ns() // 1_000_000


def customer_record(
    *, account_id: str, name: str, e164: str, tier: str, email: str | None = None
) -> dict[str, str]:
    """The hash stored for a customer: the phone is kept masked only."""
    record = {"account_id": account_id, "name": name, "phone_masked": mask(e164), "tier": tier}
    if email:
        record["email"] = email
    return record


class RedisCustomers:
    """``Customers`` backed by ``crm:customer:*`` hashes and the ``crm:phone:*`` index."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def by_phone(self, e164: str) -> dict[str, Any] | None:
        """The customer whose phone is ``e164`` (exact E.164 string), or None."""
        try:
            account_id = await self.redis.get(self.keys.customer_phone(e164))
        except RedisError as exc:
            raise StoreError(f"customer lookup by phone failed: {exc}") from exc
        if account_id is None:
            return None
        return await self.by_account(str(account_id))

    async def by_account(self, account_id: str) -> dict[str, Any] | None:
        """The customer with ``account_id``, or None."""
        try:
            raw = _strs(await self.redis.hgetall(self.keys.customer(account_id)))
        except RedisError as exc:
            raise StoreError(f"customer lookup failed: {exc}") from exc
        if not raw:
            return None
        if "account_id" not in raw or "name" not in raw:
            raise StoreError(f"customer record {account_id!r} is malformed")
        return {k: raw[k] for k in _CUSTOMER_FIELDS if k in raw}

    async def put(
        self, *, account_id: str, name: str, e164: str, tier: str, email: str | None = None
    ) -> dict[str, Any]:
        """Create or replace a customer and its phone index entry (one transaction).

        ``e164`` is stored masked in the record and hashed in the index key.
        Returns the customer dict.
        """
        record = customer_record(
            account_id=account_id, name=name, e164=e164, tier=tier, email=email
        )
        key = self.keys.customer(account_id)
        try:
            mapping: dict[FieldT, EncodableT] = {k: v for k, v in record.items()}
            await transact(  # one MULTI (one per slot on a Cluster: record, phone index)
                self.redis,
                [
                    lambda p: (p.delete(key), p.hset(key, mapping=mapping)),
                    lambda p: p.set(self.keys.customer_phone(e164), account_id),
                ],
            )
        except RedisError as exc:
            raise StoreError(f"storing customer {account_id!r} failed: {exc}") from exc
        return dict(record)


class RedisOrders:
    """``Orders`` backed by ``orders:*`` hashes; new ids come from ``INCR orders:seq``.

    New orders are ``processing`` with ``delivery_date`` = today (UTC) + ``lead_days``.
    ``clock_ms`` (epoch ms) is injectable for tests.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        lead_days: int = 5,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.lead_days = lead_days
        self.clock_ms = clock_ms

    async def get(self, order_id: str) -> dict[str, Any] | None:
        """The order ``order_id`` (decimal string), or None."""
        try:
            raw = _strs(await self.redis.hgetall(self.keys.order(order_id)))
        except RedisError as exc:
            raise StoreError(f"order lookup failed: {exc}") from exc
        if not raw:
            return None
        order: dict[str, Any] = dict(raw)
        try:
            for name in _ORDER_INT_FIELDS:
                order[name] = int(raw[name])
        except (KeyError, ValueError) as exc:
            raise StoreError(f"order record {order_id!r} is malformed") from exc
        return order

    async def create(self, account_id: str, item: str, quantity: int) -> dict[str, Any]:
        """Create a ``processing`` order and return its dict (``order_id`` from ``orders:seq``).

        Raises ``ValueError`` when ``quantity`` < 1 or ``item`` is blank. The id counter
        starts at ``ORDERS_SEQ_START`` when absent (never migrated), so the first id is 2001.
        """
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        if not item.strip():
            raise ValueError("item must not be blank")
        created = self.clock_ms()
        day = dt.datetime.fromtimestamp(created / 1000, tz=dt.UTC).date()
        delivery = (day + dt.timedelta(days=self.lead_days)).isoformat()
        try:
            await self.redis.set(self.keys.orders_seq, ORDERS_SEQ_START, nx=True)
            order_id = str(await self.redis.incr(self.keys.orders_seq))
            order: dict[str, Any] = {
                "order_id": order_id,
                "account_id": account_id,
                "item": item.strip(),
                "quantity": quantity,
                "status": "processing",
                "delivery_date": delivery,
                "created_at_ms": created,
            }
            mapping: dict[FieldT, EncodableT] = {k: v for k, v in order.items()}
            await self.redis.hset(self.keys.order(order_id), mapping=mapping)
        except RedisError as exc:
            raise StoreError(f"creating an order failed: {exc}") from exc
        return order
