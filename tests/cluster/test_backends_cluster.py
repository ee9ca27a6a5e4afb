"""The CRM and orders backends (seeded with the demo CRM) on the real Redis Cluster."""

from __future__ import annotations

from tests.store.test_backends import (  # noqa: F401  (run again, here on the cluster)
    keys,
    test_customer_by_phone_and_account,
    test_customer_put,
    test_orders_get_and_create,
)
