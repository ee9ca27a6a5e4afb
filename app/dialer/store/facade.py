"""CampaignStore: the one store the dialer, its runner and the admin API use."""

from __future__ import annotations

from app.dialer.store.attempts import Attempts
from app.dialer.store.campaigns import Campaigns
from app.dialer.store.contacts import Contacts


class CampaignStore(Campaigns, Contacts, Attempts):
    """Redis access for campaigns, their contacts and call attempts (see the package doc).

    Every method raises ``StoreError`` when Redis fails; ``CampaignNotFound`` /
    ``CampaignStateError`` as documented.
    """

    async def delete(self, cid: str) -> None:
        """Delete a finished campaign and everything under it (contacts' numbers too)."""
        k = self.keys
        count = await self.contact_count(cid)
        attempt_ids: list[str] = []
        for n in range(1, count + 1):
            ids = await self._run(
                "delete: attempts", self.redis.lrange(k.contact_attempts(cid, n), 0, -1)
            )
            attempt_ids += [str(a) for a in ids]
        keys_to_delete = [
            k.campaign(cid),
            k.campaign_seq(cid),
            k.campaign_phones(cid),
            k.campaign_due(cid),
            k.campaign_inflight(cid),
            k.campaign_optouts(cid),
            k.campaign_stats(cid),
            k.campaign_rate(cid),
        ]
        keys_to_delete += [k.contact(cid, n) for n in range(1, count + 1)]
        keys_to_delete += [k.contact_attempts(cid, n) for n in range(1, count + 1)]
        keys_to_delete += [k.attempt(a) for a in attempt_ids]
        async with self.redis.pipeline(transaction=False) as p:
            for start in range(0, len(keys_to_delete), 500):
                p.delete(*keys_to_delete[start : start + 500])
            p.zrem(k.campaigns, cid)
            p.srem(k.campaigns_active, cid)
            await self._run("delete campaign", p.execute())
