"""Retired: this migration seeded the demo CRM (Acme customers and orders) until the seed
became ``switchboard seed-demo`` (``app/demo.py``); now it does nothing.

Version 1 stays in the sequence so numbering is stable: a deployment at ``schema:version``
≥ 1 already ran the old seed (``switchboard seed-demo --remove`` deletes those records), a
new one records version 1 without writing anything.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from app.store.keys import Keys

VERSION = 1
DESCRIPTION = "no-op (was the demo CRM seed, now `switchboard seed-demo`)"


async def up(redis: aioredis.Redis, keys: Keys) -> None:
    """Nothing to do (see the module doc)."""
