"""Contacts: importing them (each number once per campaign), reading them, opt-outs,
and the due queue (when each waiting contact is next due, draining it).

- ``add`` (Lua): store a batch of contacts; a number already in the campaign is not
  added twice.
- ``drain`` (Lua): finish every waiting contact of a campaign (end reached, cancelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError

from app.dialer.models import Contact, Outcome
from app.dialer.store.base import StoreBase
from app.errors import CampaignNotFound, CampaignStateError, StoreError
from app.phone import mask
from app.store.keys import phone_hash

#: Contacts stored per ``add`` script call.
ADD_BATCH = 500
#: Contacts finished per ``drain`` script call.
DRAIN_BATCH = 500


@dataclass(frozen=True, slots=True)
class NewContact:
    """A validated contact with its import row and first due time (ms)."""

    row: int
    contact: Contact
    due_ms: int


class Contacts(StoreBase):
    """A campaign's contacts, their opt-outs and their due queue."""

    async def add_contacts(
        self, cid: str, contacts: Sequence[NewContact], now_ms: int
    ) -> list[tuple[NewContact, str | None, str | None]]:
        """Store ``contacts``; for each returns ``(contact, new id, None)`` or
        ``(contact, None, id of the existing contact with that number)``.

        Raises ``CampaignNotFound``, or ``CampaignStateError`` for a finished campaign.
        """
        out: list[tuple[NewContact, str | None, str | None]] = []
        for start in range(0, len(contacts), ADD_BATCH):
            batch = contacts[start : start + ADD_BATCH]
            args: list[Any] = [0, now_ms]
            for c in batch:
                args += [
                    phone_hash(c.contact.phone),
                    c.contact.phone,
                    mask(c.contact.phone),
                    c.contact.timezone,
                    orjson.dumps(c.contact.variables).decode(),
                    c.row,
                    c.due_ms,
                ]
            try:
                ids = await self._add_batch(cid, len(batch), args)
            except ResponseError as exc:
                text = str(exc)
                if "NOCAMPAIGN" in text:
                    raise CampaignNotFound(f"no campaign {cid!r}") from None
                if "FINISHED" in text:
                    raise CampaignStateError(
                        f"campaign {cid} is {text.split()[-1]}; it takes no more contacts"
                    ) from None
                raise StoreError(f"add contacts failed: {exc}") from exc
            for c, n in zip(batch, ids, strict=True):
                n = str(n)
                out.append((c, None, n[1:]) if n.startswith("-") else (c, n, None))
        return out

    async def _add_batch(self, cid: str, size: int, args: list[Any]) -> Any:
        """Run ``add.lua`` for one batch: read the contact counter, declare the hashes of
        the ids after it; again while another import moved the counter meanwhile."""
        k = self.keys
        while True:
            seq = int(await self._run("add contacts", self.redis.get(k.campaign_seq(cid))) or 0)
            args[0] = seq
            try:
                return await self._run(
                    "add contacts",
                    self._add(
                        keys=[
                            k.campaign_phones(cid),
                            k.campaign_seq(cid),
                            k.campaign_due(cid),
                            k.campaign_stats(cid),
                            k.campaign(cid),
                            *[k.contact(cid, seq + i) for i in range(1, size + 1)],
                        ],
                        args=args,
                    ),
                )
            except ResponseError as exc:
                if "RETRY" not in str(exc):
                    raise

    async def contact(self, cid: str, n: str) -> dict[str, str]:
        """The raw contact hash (empty when unknown)."""
        raw: dict[str, str] = await self._run(
            "read contact", self.redis.hgetall(self.keys.contact(cid, n))
        )
        return raw

    async def contact_attempts(self, cid: str, n: str) -> list[dict[str, str]]:
        """The contact's attempt hashes, oldest first."""
        ids = await self._run(
            "contact attempts",
            self.redis.lrange(self.keys.contact_attempts(cid, n), 0, -1),
        )
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as p:
            for aid in ids:
                p.hgetall(self.keys.attempt(aid))
            rows = await self._run("read attempts", p.execute())
        return [r for r in rows if r]

    async def contact_count(self, cid: str) -> int:
        raw = await self._run("contact count", self.redis.get(self.keys.campaign_seq(cid)))
        return int(raw or 0)

    async def is_opted_out(self, cid: str, e164: str) -> bool:
        """True when ``e164`` opted out of campaign ``cid``."""
        return bool(
            await self._run(
                "opt-out check",
                self.redis.sismember(self.keys.campaign_optouts(cid), phone_hash(e164)),
            )
        )

    async def add_opt_out(self, cid: str, e164: str) -> None:
        """Record that ``e164`` must not be called again by campaign ``cid``."""
        await self._run(
            "opt out",
            self.redis.sadd(self.keys.campaign_optouts(cid), phone_hash(e164)),
        )

    async def next_due_ms(self, cid: str) -> int | None:
        rows = await self._run(
            "next due",
            self.redis.zrange(self.keys.campaign_due(cid), 0, 0, withscores=True),
        )
        return int(rows[0][1]) if rows else None

    async def drain(
        self,
        cid: str,
        outcome: Outcome,
        now_ms: int,
        reason: str,
        due_before_ms: int | None = None,
    ) -> int:
        """Finish waiting contacts (all, or those due before ``due_before_ms``) with
        ``outcome``; returns how many."""
        k = self.keys
        total = 0
        top = "+inf" if due_before_ms is None else f"({due_before_ms}"
        while True:
            ids = await self._run(
                "drain: read",
                self.redis.zrangebyscore(
                    k.campaign_due(cid), "-inf", top, start=0, num=DRAIN_BATCH
                ),
            )
            if not ids:
                return total
            n = await self._run(
                "drain",
                self._drain(
                    keys=[
                        k.campaign_due(cid),
                        k.campaign_stats(cid),
                        *[k.contact(cid, str(i)) for i in ids],
                    ],
                    args=["", outcome.value, now_ms, "", "", reason, *ids],
                ),
            )
            total += int(n)
            if len(ids) < DRAIN_BATCH:
                return total
