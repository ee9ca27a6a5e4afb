"""Attempts: the lease protocol, by which any number of dialer processes share a
campaign's contacts. Every step is one Lua script, so each is atomic:

- ``claim``: if the campaign runs, its in-flight count is under the cap, a contact is
  due and the rate limiters have a free slot, move the first due contact into a new
  *leased* attempt (in-flight, deadline = now + lease).
- ``dial``: fence + rate limit. Take the account's next call slot (``account``, its own
  key), then, only for the lease owner, only while the attempt is still leased and the
  campaign runs, and only when the campaign's next call slot has come, take that and
  mark the attempt *dialing* (a dial that does not happen gives the account slot back:
  ``give_back``). Exactly one of
  ``dial`` and a lease recovery (``release``) can win for an attempt, so an attempt
  whose lease was recovered is never dialled by its old owner.
- ``release``: give a leased (never dialled) attempt's contact back to the due queue.
- ``progress``: carrier callbacks move a dialled attempt forward (placed → ringing →
  answered), never back; first-seen times are kept.
- ``finish``: once per attempt: record its outcome and either finish the contact or
  queue its retry, and free its in-flight slot.
- ``finish_leased``: end a contact at dial time without a call (do-not-call, opt-out).

Dialer heartbeats say which owners are alive; the in-flight set (by deadline) finds the
leases to recover.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from app.dialer.models import Outcome
from app.dialer.store.base import StoreBase

log = logging.getLogger(__name__)


def new_attempt_id(cid: str) -> str:
    """``att_`` + 16 hex digits + ``.`` + the campaign id: the attempt's key is then in
    its campaign's hash slot (``Keys.attempt``)."""
    return f"att_{secrets.token_hex(8)}.{cid}"


#: Claims re-read when another dialer took the contact first, before waiting a moment.
CLAIM_TRIES = 5


@dataclass(frozen=True, slots=True)
class Claim:
    """Result of ``claim``: ``kind`` is ``claimed`` (``contact`` and ``attempt`` set),
    ``stopped`` (campaign not running), ``full`` (concurrency cap reached), ``empty``
    (nothing waits), ``wait`` (next contact due at ``at_ms``) or ``rate`` (next call slot
    at ``at_ms``)."""

    kind: str
    contact: str = ""
    attempt: str = ""
    at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DialResult:
    """Result of ``dial``: ``kind`` is ``ok`` (``number``: the contact's attempt number),
    ``lost`` (no longer our lease), ``stopped`` (campaign paused/cancelled) or ``rate``
    (next call slot at ``at_ms``)."""

    kind: str
    number: int = 0
    at_ms: int | None = None


class Attempts(StoreBase):
    """Call attempts: the lease protocol steps, reads and in-flight bookkeeping."""

    async def claim(
        self,
        cid: str,
        *,
        owner: str,
        now_ms: int,
        lease_ms: int,
        max_concurrent: int,
    ) -> Claim:
        """Lease the first due contact of ``cid`` (see ``Claim``).

        The first due contact and the account's rate are read, then the claim script
        checks and takes that contact; when another dialer took it first the read is
        repeated (``CLAIM_TRIES``), then ``wait`` a millisecond."""
        k = self.keys
        aid = new_attempt_id(cid)
        for _ in range(CLAIM_TRIES):
            async with self.redis.pipeline(transaction=False) as p:
                p.zrangebyscore(k.campaign_due(cid), "-inf", now_ms, start=0, num=1)
                p.get(k.dialer_rate)
                due, account_ready = await self._run("claim: read", p.execute())
            n = str(due[0]) if due else ""
            kind, value = await self._run(
                "claim",
                self._claim(
                    keys=[
                        k.campaign(cid),
                        k.campaign_due(cid),
                        k.campaign_inflight(cid),
                        k.campaign_rate(cid),
                        k.attempt(aid),
                        k.contact(cid, n) if n else k.campaign(cid),
                    ],
                    args=[now_ms, lease_ms, max_concurrent, aid, owner, account_ready or "",
                          "", cid, n],
                ),
            )  # fmt: skip
            if kind == "claimed":
                return Claim("claimed", contact=str(value), attempt=aid)
            if kind in ("wait", "rate"):
                return Claim(str(kind), at_ms=int(float(value)))
            if kind != "retry":
                return Claim(str(kind))
        return Claim("wait", at_ms=now_ms + 1)

    async def dial(
        self,
        cid: str,
        contact: str,
        aid: str,
        *,
        owner: str,
        now_ms: int,
        campaign_interval_ms: int,
        account_interval_ms: int,
        deadline_ms: int,
    ) -> DialResult:
        """Fence and rate-limit one dial (see the module doc); ``deadline_ms`` becomes the
        attempt's in-flight deadline until the carrier reports on it."""
        k = self.keys
        taken, set_to, before = await self._run(
            "dial: account slot",
            self._account(keys=[k.dialer_rate], args=[now_ms, account_interval_ms]),
        )
        if taken == "rate":
            return DialResult("rate", at_ms=int(float(set_to)))
        try:
            kind, value = await self._run(
                "dial",
                self._dial(
                    keys=[
                        k.attempt(aid),
                        k.campaign(cid),
                        k.campaign_inflight(cid),
                        k.campaign_rate(cid),
                        k.contact(cid, contact),
                        k.contact_attempts(cid, contact),
                        k.campaign_stats(cid),
                    ],
                    args=[owner, now_ms, campaign_interval_ms, "", deadline_ms, aid],
                ),
            )
        except BaseException:
            await self._give_back_slot(set_to, before)
            raise
        if kind == "ok":
            return DialResult("ok", number=int(value))
        await self._give_back_slot(set_to, before)
        if kind == "rate":
            return DialResult("rate", at_ms=int(float(value)))
        return DialResult(str(kind))

    async def _give_back_slot(self, set_to: str, before: str) -> None:
        """Return the account slot a dial took but did not use (best effort: a slot
        another dialer took since stays taken)."""
        try:
            await self._give_back(keys=[self.keys.dialer_rate], args=[set_to, before])
        except RedisError as exc:
            log.warning("could not give the account's call slot back: %s", exc)

    async def release(
        self,
        cid: str,
        contact: str,
        aid: str,
        *,
        owner: str,
        due_ms: int,
        recovered: bool = False,
    ) -> bool:
        """Give a leased, never dialled attempt's contact back (due at ``due_ms``).
        ``owner=""`` releases whoever holds it (lease recovery). False: not leased."""
        k = self.keys
        done = await self._run(
            "release",
            self._release(
                keys=[
                    k.attempt(aid),
                    k.campaign_inflight(cid),
                    k.campaign_due(cid),
                    k.contact(cid, contact),
                    k.campaign_stats(cid),
                ],
                args=[owner, due_ms, aid, "recovered" if recovered else "", contact],
            ),
        )
        return bool(done)

    async def finish_leased(
        self,
        cid: str,
        contact: str,
        aid: str,
        *,
        owner: str,
        outcome: Outcome,
        now_ms: int,
        reason: str,
    ) -> bool:
        """End a leased contact without a call (``dnc``, ``opted_out``, ``expired``)."""
        k = self.keys
        done = await self._run(
            "finish leased",
            self._finish_leased(
                keys=[
                    k.attempt(aid),
                    k.campaign_inflight(cid),
                    k.contact(cid, contact),
                    k.campaign_stats(cid),
                ],
                args=[owner, aid, outcome.value, now_ms, reason],
            ),
        )
        return bool(done)

    async def progress(
        self,
        cid: str,
        aid: str,
        *,
        state: str,
        stamp_field: str,
        now_ms: int,
        call_sid: str = "",
        deadline_ms: int | None = None,
    ) -> bool:
        """Move a dialled attempt forward to ``state`` (``placed``/``ringing``/``answered``;
        never back), set ``stamp_field`` once, link ``call_sid`` and optionally move its
        in-flight deadline. False when the attempt is unknown, leased or done."""
        k = self.keys
        done = await self._run(
            "attempt progress",
            self._progress(
                keys=[k.attempt(aid), k.campaign_inflight(cid)],
                args=[
                    state,
                    stamp_field,
                    now_ms,
                    call_sid,
                    aid,
                    "",
                    "" if deadline_ms is None else deadline_ms,
                ],
            ),
        )
        if done and call_sid:  # the link lives in the call's slot: its own command
            await self._run(
                "attempt by call",
                self.redis.set(k.attempt_by_call(call_sid), aid, ex=self.retention_s),
            )
        return bool(done)

    async def finish(
        self,
        cid: str,
        contact: str,
        aid: str,
        *,
        attempt_outcome: Outcome,
        final: Outcome | None,
        retry_at_ms: int | None,
        reason: str,
        now_ms: int,
        carrier_status: str,
        answered_by: str = "",
        error: str = "",
        lost: bool = False,
    ) -> bool:
        """Finish a dialled attempt once: True for the call that did it, False after."""
        k = self.keys
        done = await self._run(
            "finish attempt",
            self._finish(
                keys=[
                    k.attempt(aid),
                    k.campaign_inflight(cid),
                    k.contact(cid, contact),
                    k.campaign_due(cid),
                    k.campaign_stats(cid),
                    k.campaign(cid),
                ],
                args=[
                    aid,
                    attempt_outcome.value,
                    now_ms,
                    final.value if final else "",
                    "" if retry_at_ms is None else retry_at_ms,
                    reason,
                    carrier_status,
                    answered_by,
                    contact,
                    error,
                    "lost" if lost else "",
                ],
            ),
        )
        return bool(done)

    async def mark_amd(self, aid: str, answered_by: str, now_ms: int) -> bool:
        """Record an AMD verdict on an existing attempt; True only for the first one
        (a repeated callback must not repeat the voicemail action)."""
        key = self.keys.attempt(aid)

        async def run() -> bool:
            async with self.redis.pipeline(transaction=True) as p:
                p.exists(key)
                p.hsetnx(key, "amd_at_ms", now_ms)
                exists, first = await p.execute()
            if not exists:
                await self.redis.delete(key)
                return False
            if first:
                await self.redis.hset(key, "answered_by", answered_by)
            return bool(first)

        result: bool = await self._run("AMD verdict", run())
        return result

    async def attempt(self, aid: str) -> dict[str, str]:
        """The raw attempt hash (empty when unknown)."""
        raw: dict[str, str] = await self._run(
            "read attempt", self.redis.hgetall(self.keys.attempt(aid))
        )
        return raw

    async def attempt_for_call(self, call_sid: str) -> str | None:
        """The attempt id of an outbound call, if known."""
        aid = await self._run(
            "attempt by call", self.redis.get(self.keys.attempt_by_call(call_sid))
        )
        return str(aid) if aid else None

    async def set_attempt_fields(self, aid: str, **fields: str | int) -> None:
        """Set fields on an existing attempt (results from tools, AMD, errors)."""
        key = self.keys.attempt(aid)
        mapping: dict[FieldT, EncodableT] = {k: v for k, v in fields.items()}

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as p:
                p.exists(key)
                p.hset(key, mapping=mapping)
                exists, _ = await p.execute()
                if not exists:  # never create a stray attempt hash
                    await self.redis.delete(key)

        await self._run("attempt fields", run())

    async def expired_inflight(self, cid: str, now_ms: int, limit: int = 100) -> list[str]:
        """In-flight attempt ids whose deadline passed."""
        ids = await self._run(
            "expired in-flight",
            self.redis.zrangebyscore(
                self.keys.campaign_inflight(cid), "-inf", now_ms, start=0, num=limit
            ),
        )
        return [str(i) for i in ids]

    async def extend_inflight(self, cid: str, aid: str, deadline_ms: int) -> None:
        await self._run(
            "extend in-flight",
            self.redis.zadd(self.keys.campaign_inflight(cid), {aid: deadline_ms}, xx=True),
        )

    async def drop_inflight(self, cid: str, aid: str) -> None:
        """Forget an in-flight entry whose attempt hash is gone."""
        await self._run("drop in-flight", self.redis.zrem(self.keys.campaign_inflight(cid), aid))

    async def note_dial_error(self, cid: str, message: str, now_ms: int) -> None:
        """Count a failed ``calls.create`` and keep its message (phone numbers masked by
        the caller) as the campaign's last dial error (``stats``)."""
        key = self.keys.campaign_stats(cid)
        async with self.redis.pipeline(transaction=True) as p:
            p.hincrby(key, "dial_errors", 1)
            p.hset(
                key,
                mapping={
                    "last_dial_error": message[:300],
                    "last_dial_error_at_ms": now_ms,
                },
            )
            await self._run("note dial error", p.execute())

    async def heartbeat(self, owner: str, now_ms: int, stale_ms: int) -> None:
        """Record that dialer ``owner`` is alive; forget dialers silent for ``stale_ms``."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as p:
            p.zadd(k.dialer_instances, {owner: now_ms})
            p.zremrangebyscore(k.dialer_instances, "-inf", now_ms - stale_ms)
            await self._run("heartbeat", p.execute())

    async def dialers(self, now_ms: int, stale_ms: int) -> list[str]:
        """Ids of dialers seen within ``stale_ms``."""
        ids = await self._run(
            "dialers",
            self.redis.zrangebyscore(self.keys.dialer_instances, now_ms - stale_ms, "+inf"),
        )
        return [str(i) for i in ids]
