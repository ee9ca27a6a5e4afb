"""The ``tools.base.Outcomes`` backend: what ``record_outcome`` and ``opt_out`` write.

Results land on the call's attempt (``result``, ``result_detail``, ``result_at_ms``)
and are read when the call completes (``Campaigns.finish_attempt``). An opt-out also
adds the number to the campaign's opt-outs at once, so no later dial of that campaign
reaches it, whatever happens to this call.
"""

from __future__ import annotations

import logging

from app.dialer.clock import Clock
from app.dialer.models import RESULT_OUTCOMES, Outcome
from app.dialer.store import CampaignStore
from app.phone import mask

log = logging.getLogger(__name__)


class CampaignOutcomes:
    """Implements ``tools.base.Outcomes`` over a ``CampaignStore``."""

    def __init__(self, store: CampaignStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def _attempt(self, call_sid: str) -> tuple[str, dict[str, str]] | None:
        aid = await self.store.attempt_for_call(call_sid)
        if not aid:
            return None
        attempt = await self.store.attempt(aid)
        return (aid, attempt) if attempt else None

    async def record(self, call_sid: str, outcome: str, detail: str) -> bool:
        """Record ``outcome`` (one of ``RESULT_OUTCOMES``; ``ValueError`` otherwise)."""
        if outcome not in RESULT_OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        found = await self._attempt(call_sid)
        if found is None:
            return False
        aid, attempt = found
        if attempt.get("result") == Outcome.opted_out.value:
            return True  # an opt-out outranks anything said after it
        await self.store.set_attempt_fields(
            aid, result=outcome, result_detail=detail[:300], result_at_ms=self.clock.now_ms()
        )
        log.info("attempt %s: outcome %s recorded", aid, outcome)
        return True

    async def opt_out(self, call_sid: str, reason: str) -> bool:
        found = await self._attempt(call_sid)
        if found is None:
            return False
        aid, attempt = found
        cid = attempt["campaign"]
        contact = await self.store.contact(cid, attempt["contact"])
        phone = contact.get("phone", "")
        if phone:
            await self.store.add_opt_out(cid, phone)
        await self.store.set_attempt_fields(
            aid,
            result=Outcome.opted_out.value,
            result_detail=reason[:300],
            result_at_ms=self.clock.now_ms(),
        )
        log.info("attempt %s: %s opted out of campaign %s", aid, mask(phone), cid)
        return True
