"""Campaigns, contacts and attempts in Redis; every state change is one Lua script.

Key scheme: ``app.store.keys`` (``campaign:*``, ``attempt:*``, ``dialer:*``). One concept
per module, :class:`CampaignStore` (``facade``) in front of them:

- :mod:`~app.dialer.store.campaigns`: the campaign record, status transitions, counters.
- :mod:`~app.dialer.store.contacts`: contact import, opt-outs, the due queue.
- :mod:`~app.dialer.store.attempts`: the lease protocol (claim, dial, release,
  progress, finish) that makes each step atomic across any number of dialer processes.
- :mod:`~app.dialer.store.base`: the Redis client, keys, error mapping and the Lua
  scripts (``lua/*.lua``, each listing its ``KEYS`` and ``ARGV``; read once at import).

Times are Unix epoch ms passed in by the caller's clock (fake clocks in tests). Every
method raises ``StoreError`` when Redis fails; ``CampaignNotFound`` /
``CampaignStateError`` as documented.
"""

from __future__ import annotations

from app.dialer.store.attempts import Claim, DialResult, new_attempt_id
from app.dialer.store.campaigns import StoredCampaign, new_campaign_id
from app.dialer.store.contacts import ADD_BATCH, DRAIN_BATCH, NewContact
from app.dialer.store.facade import CampaignStore

__all__ = [
    "ADD_BATCH",
    "DRAIN_BATCH",
    "CampaignStore",
    "Claim",
    "DialResult",
    "NewContact",
    "StoredCampaign",
    "new_attempt_id",
    "new_campaign_id",
]
