"""Campaigns: the campaign record, its status transitions and its live counters.

- ``status`` (Lua): a status transition, only from the allowed statuses.
- ``complete`` (Lua): mark a running campaign completed once nothing waits or is in
  flight (and drop finished campaigns from the active set).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.typing import EncodableT, FieldT

from app.dialer.models import CampaignSpec, CampaignStatus
from app.dialer.store.base import StoreBase
from app.errors import CampaignNotFound, CampaignStateError, StoreError
from app.store.redis import transact

#: Statuses the dialers look after (``Keys.campaigns_active``).
_ACTIVE = (CampaignStatus.running, CampaignStatus.paused, CampaignStatus.cancelled)


def new_campaign_id() -> str:
    """``cmp_`` + 12 hex digits."""
    return "cmp_" + secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class StoredCampaign:
    """A campaign as stored: its spec plus status and bookkeeping (times in ms)."""

    id: str
    spec: CampaignSpec
    status: CampaignStatus
    contacts: int
    created_at_ms: int
    started_at_ms: int | None
    ended_at_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "contacts": self.contacts,
            "created_at_ms": self.created_at_ms,
            "started_at_ms": self.started_at_ms,
            "ended_at_ms": self.ended_at_ms,
            "spec": self.spec.model_dump(mode="json"),
        }


def _opt_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


class Campaigns(StoreBase):
    """Campaign records: create, read, list, status, completion, counters."""

    async def create(self, spec: CampaignSpec, now_ms: int) -> StoredCampaign:
        """Store a new ``draft`` campaign and return it."""
        cid = new_campaign_id()
        k = self.keys
        fields: dict[FieldT, EncodableT] = {
            "id": cid,
            "name": spec.name,
            "flow": spec.flow,
            "spec": spec.model_dump_json(),
            "status": CampaignStatus.draft.value,
            "contacts": 0,
            "created_at_ms": now_ms,
            "updated_at_ms": now_ms,
        }

        await self._run(
            "create campaign",
            transact(
                self.redis,
                [
                    lambda p: p.hset(k.campaign(cid), mapping=fields),
                    lambda p: p.zadd(k.campaigns, {cid: now_ms}),
                ],
            ),
        )
        return StoredCampaign(cid, spec, CampaignStatus.draft, 0, now_ms, None, None)

    async def get(self, cid: str) -> StoredCampaign:
        """The campaign ``cid``. Raises ``CampaignNotFound``."""
        raw = await self._run("read campaign", self.redis.hgetall(self.keys.campaign(cid)))
        if not raw:
            raise CampaignNotFound(f"no campaign {cid!r}")
        try:
            spec = CampaignSpec.model_validate_json(raw["spec"])
            status = CampaignStatus(raw["status"])
        except (KeyError, ValueError) as exc:
            raise StoreError(f"campaign {cid} is malformed: {exc}") from exc
        return StoredCampaign(
            id=cid,
            spec=spec,
            status=status,
            contacts=int(raw.get("contacts", 0)),
            created_at_ms=int(raw.get("created_at_ms", 0)),
            started_at_ms=_opt_int(raw.get("started_at_ms")),
            ended_at_ms=_opt_int(raw.get("ended_at_ms")),
        )

    async def list_ids(self, limit: int = 100) -> list[str]:
        """Newest campaign ids first."""
        ids = await self._run(
            "list campaigns", self.redis.zrevrange(self.keys.campaigns, 0, limit - 1)
        )
        return [str(i) for i in ids]

    async def active_ids(self) -> list[str]:
        """Ids of campaigns the dialers look after (running, paused, draining)."""
        ids = await self._run("active campaigns", self.redis.smembers(self.keys.campaigns_active))
        return sorted(str(i) for i in ids)

    async def set_status(
        self,
        cid: str,
        new: CampaignStatus,
        allowed_from: Sequence[CampaignStatus],
        now_ms: int,
        stamp_field: str = "",
    ) -> CampaignStatus:
        """Move ``cid`` to ``new`` if its status is one of ``allowed_from``; returns the old
        status. ``stamp_field`` (e.g. ``started_at_ms``) is set once to ``now_ms``.
        Raises ``CampaignNotFound`` / ``CampaignStateError``."""
        k = self.keys
        if new in _ACTIVE:  # first, so a dialer never misses a running campaign
            await self._run("campaign status", self.redis.sadd(k.campaigns_active, cid))
        kind, old = await self._run(
            "campaign status",
            self._status(
                keys=[k.campaign(cid)],
                args=[
                    new.value,
                    now_ms,
                    stamp_field,
                    cid,
                    *[s.value for s in allowed_from],
                ],
            ),
        )
        if kind == "missing":
            raise CampaignNotFound(f"no campaign {cid!r}")
        if kind == "refused":
            raise CampaignStateError(f"campaign {cid} is {old}; cannot make it {new.value}")
        return CampaignStatus(old)

    async def complete_if_done(self, cid: str, now_ms: int) -> str:
        """Mark a running campaign ``completed`` when nothing waits or is in flight (and
        drop finished campaigns from the active set). Returns the resulting status word
        (``busy`` while work remains)."""
        k = self.keys
        result = await self._run(
            "complete campaign",
            self._complete(
                keys=[k.campaign(cid), k.campaign_due(cid), k.campaign_inflight(cid)],
                args=[now_ms, cid],
            ),
        )
        if result in ("completed", "cancelled", "missing"):  # over: never active again
            await self._run("complete campaign", self.redis.srem(k.campaigns_active, cid))
        return str(result)

    async def stats(self, cid: str) -> dict[str, Any]:
        """Live counters: pending, in_progress, done, attempts, per outcome (see
        ``Campaigns.stats`` for the shape)."""
        k = self.keys
        async with self.redis.pipeline(transaction=True) as p:  # one slot: the campaign's
            p.hgetall(k.campaign(cid))
            p.zcard(k.campaign_due(cid))
            p.zcard(k.campaign_inflight(cid))
            p.hgetall(k.campaign_stats(cid))
            p.zrange(k.campaign_due(cid), 0, 0, withscores=True)
            campaign, pending, inflight, counters, first = await self._run("stats", p.execute())
        if not campaign:
            raise CampaignNotFound(f"no campaign {cid!r}")
        outcomes = {
            key.removeprefix("outcome:"): int(v)
            for key, v in counters.items()
            if key.startswith("outcome:")
        }
        attempt_outcomes = {
            key.removeprefix("attempt:"): int(v)
            for key, v in counters.items()
            if key.startswith("attempt:")
        }
        return {
            "id": cid,
            "name": campaign.get("name", ""),
            "status": campaign.get("status", ""),
            "contacts": int(campaign.get("contacts", 0)),
            "pending": int(pending),
            "in_progress": int(inflight),
            "done": sum(outcomes.values()),
            "attempts": int(counters.get("dialed", 0)),
            "outcomes": dict(sorted(outcomes.items())),
            "attempt_outcomes": dict(sorted(attempt_outcomes.items())),
            "recovered_leases": int(counters.get("recovered", 0)),
            "lost_dials": int(counters.get("lost", 0)),
            "next_due_at_ms": int(first[0][1]) if first else None,
            "dial_errors": int(counters.get("dial_errors", 0)),
            "last_dial_error": counters.get("last_dial_error") or None,
            "last_dial_error_at_ms": _opt_int(counters.get("last_dial_error_at_ms")),
        }
