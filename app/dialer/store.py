"""Campaigns, contacts and attempts in Redis; every state change is one Lua script.

Key scheme: ``app.store.keys`` (``campaign:*``, ``attempt:*``, ``dialer:*``). The scripts
make each step atomic across any number of dialer processes:

- ``claim``: if the campaign runs, its in-flight count is under the cap, a contact is
  due and the rate limiters have a free slot, move the first due contact into a new
  *leased* attempt (in-flight, deadline = now + lease).
- ``dial``: fence + rate limit. Only the lease owner, only while the attempt is still
  leased and the campaign runs, and only when the campaign's and the account's next
  call slots have come: take both slots and mark the attempt *dialing*. Exactly one of
  ``dial`` and a lease recovery (``release``) can win for an attempt, so an attempt
  whose lease was recovered is never dialled by its old owner.
- ``release``: give a leased (never dialled) attempt's contact back to the due queue.
- ``progress``: carrier callbacks move a dialled attempt forward (placed → ringing →
  answered), never back; first-seen times are kept.
- ``finish``: once per attempt: record its outcome and either finish the contact or
  queue its retry, and free its in-flight slot.
- ``finish_leased``: end a contact at dial time without a call (do-not-call, opt-out).
- ``drain``: finish every waiting contact of a campaign (end reached, cancelled).
- ``status``: campaign status transitions.
- ``complete``: mark a running campaign completed once nothing waits or is in flight.

Times are Unix epoch ms passed in by the caller's clock (fake clocks in tests). Every
method raises ``StoreError`` when Redis fails; ``CampaignNotFound`` /
``CampaignStateError`` as documented.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from app.dialer.models import CampaignSpec, CampaignStatus, Contact, Outcome
from app.errors import CampaignNotFound, CampaignStateError, StoreError
from app.phone import mask
from app.store.keys import Keys, phone_hash

log = logging.getLogger(__name__)

#: Contacts stored per ``add`` script call.
ADD_BATCH = 500
#: Contacts finished per ``drain`` script call.
DRAIN_BATCH = 500

_CLAIM = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return {'stopped', ''} end
local now = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {'full', ''} end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
if #due == 0 then
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #nxt == 0 then return {'empty', ''} end
  return {'wait', nxt[2]}
end
local ready = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'),
                       tonumber(redis.call('GET', KEYS[5]) or '0'))
if ready > now then return {'rate', string.format('%d', ready)} end
local n = due[1]
redis.call('ZREM', KEYS[2], n)
redis.call('HSET', ARGV[6], 'id', ARGV[4], 'campaign', ARGV[8], 'contact', n,
           'state', 'leased', 'owner', ARGV[5], 'leased_at_ms', now, 'due_at_ms', due[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[4])
redis.call('HSET', ARGV[7] .. n, 'state', 'leased', 'current_attempt', ARGV[4])
return {'claimed', n}
"""

_DIAL = """
if redis.call('HGET', KEYS[1], 'state') ~= 'leased' then return {'lost', ''} end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {'lost', ''} end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return {'stopped', ''} end
local now = tonumber(ARGV[2])
local ready = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'),
                       tonumber(redis.call('GET', KEYS[5]) or '0'))
if ready > now then return {'rate', string.format('%d', ready)} end
redis.call('SET', KEYS[4], string.format('%d', now + tonumber(ARGV[3])))
redis.call('SET', KEYS[5], string.format('%d', now + tonumber(ARGV[4])))
local n = redis.call('HINCRBY', KEYS[6], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'dialing', 'dialed_at_ms', now, 'number', n)
redis.call('HSET', KEYS[6], 'state', 'dialing', 'last_attempt', ARGV[6])
redis.call('RPUSH', KEYS[7], ARGV[6])
redis.call('ZADD', KEYS[3], 'XX', ARGV[5], ARGV[6])
redis.call('HINCRBY', KEYS[8], 'dialed', 1)
return {'ok', tostring(n)}
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'leased' then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
redis.call('HSET', KEYS[4], 'state', 'pending', 'due_at_ms', ARGV[2])
redis.call('HDEL', KEYS[4], 'current_attempt')
redis.call('DEL', KEYS[1])
if ARGV[4] == 'recovered' then redis.call('HINCRBY', KEYS[5], 'recovered', 1) end
return 1
"""

_FINISH_LEASED = """
if redis.call('HGET', KEYS[1], 'state') ~= 'leased' then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[3], 'state', 'done', 'outcome', ARGV[3], 'done_at_ms', ARGV[4],
           'reason', ARGV[5])
redis.call('HDEL', KEYS[3], 'current_attempt')
redis.call('HINCRBY', KEYS[4], 'outcome:' .. ARGV[3], 1)
return 1
"""

_PROGRESS = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'done' or st == 'leased' then return 0 end
local rank = {dialing = 1, placed = 2, ringing = 3, answered = 4}
local new = ARGV[1]
if rank[new] and rank[new] > (rank[st] or 0) then
  redis.call('HSET', KEYS[1], 'state', new)
end
if ARGV[2] ~= '' then redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('HSETNX', KEYS[1], 'call_sid', ARGV[4])
  redis.call('SET', KEYS[2], ARGV[5], 'EX', tonumber(ARGV[6]))
end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[3], 'XX', ARGV[7], ARGV[5]) end
return 1
"""

_FINISH = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'done' or st == 'leased' then return 0 end
local now = ARGV[3]
local final, retry_at = ARGV[4], ARGV[5]
local cstatus = redis.call('HGET', KEYS[6], 'status')
if final == '' and cstatus ~= 'running' and cstatus ~= 'paused' then
  final = ARGV[2]
  retry_at = ''
end
redis.call('HSET', KEYS[1], 'state', 'done', 'outcome', ARGV[2], 'ended_at_ms', now,
           'carrier_status', ARGV[7], 'decision', ARGV[6])
if ARGV[8] ~= '' then redis.call('HSETNX', KEYS[1], 'answered_by', ARGV[8]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[10]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'o:' .. ARGV[2], 1)
redis.call('HINCRBY', KEYS[5], 'attempt:' .. ARGV[2], 1)
if ARGV[11] == 'lost' then redis.call('HINCRBY', KEYS[5], 'lost', 1) end
redis.call('HDEL', KEYS[3], 'current_attempt')
if final ~= '' then
  redis.call('HSET', KEYS[3], 'state', 'done', 'outcome', final, 'done_at_ms', now,
             'reason', ARGV[6])
  redis.call('HINCRBY', KEYS[5], 'outcome:' .. final, 1)
else
  redis.call('HSET', KEYS[1], 'retry_at_ms', retry_at)
  redis.call('HSET', KEYS[3], 'state', 'pending', 'due_at_ms', retry_at)
  redis.call('ZADD', KEYS[4], retry_at, ARGV[9])
end
return 1
"""

_DRAIN = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0,
                           tonumber(ARGV[5]))
for _, n in ipairs(members) do
  redis.call('ZREM', KEYS[1], n)
  redis.call('HSET', ARGV[1] .. n, 'state', 'done', 'outcome', ARGV[2], 'done_at_ms', ARGV[3],
             'reason', ARGV[6])
  redis.call('HINCRBY', KEYS[2], 'outcome:' .. ARGV[2], 1)
end
return #members
"""

_ADD = """
local st = redis.call('HGET', KEYS[5], 'status')
if not st then return redis.error_reply('NOCAMPAIGN') end
if st == 'completed' or st == 'cancelled' then return redis.error_reply('FINISHED ' .. st) end
local out = {}
local added = 0
local i = 3
while i <= #ARGV do
  local sha = ARGV[i]
  local existing = redis.call('HGET', KEYS[1], sha)
  if existing then
    out[#out + 1] = '-' .. existing
  else
    local n = redis.call('INCR', KEYS[2])
    redis.call('HSET', KEYS[1], sha, n)
    redis.call('HSET', ARGV[1] .. n, 'id', n, 'phone', ARGV[i + 1], 'phone_masked', ARGV[i + 2],
               'phone_hash', sha, 'tz', ARGV[i + 3], 'variables', ARGV[i + 4],
               'row', ARGV[i + 5], 'state', 'pending', 'attempts', 0,
               'due_at_ms', ARGV[i + 6], 'created_at_ms', ARGV[2])
    redis.call('ZADD', KEYS[3], ARGV[i + 6], n)
    out[#out + 1] = tostring(n)
    added = added + 1
  end
  i = i + 7
end
redis.call('HINCRBY', KEYS[5], 'contacts', added)
return out
"""

_STATUS = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', ''} end
local allowed = false
for i = 5, #ARGV do if ARGV[i] == st then allowed = true end end
if not allowed then return {'refused', st} end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at_ms', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[2]) end
if ARGV[1] == 'running' or ARGV[1] == 'paused' or ARGV[1] == 'cancelled' then
  redis.call('SADD', KEYS[2], ARGV[4])
end
return {'ok', st}
"""

_COMPLETE = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then redis.call('SREM', KEYS[4], ARGV[2]) return 'missing' end
if redis.call('ZCARD', KEYS[3]) > 0 then return 'busy' end
if st == 'cancelled' then
  if redis.call('ZCARD', KEYS[2]) > 0 then return 'busy' end
  redis.call('SREM', KEYS[4], ARGV[2])
  redis.call('HSETNX', KEYS[1], 'ended_at_ms', ARGV[1])
  return 'cancelled'
end
if st ~= 'running' then return st end
if redis.call('ZCARD', KEYS[2]) > 0 then return 'busy' end
redis.call('HSET', KEYS[1], 'status', 'completed', 'updated_at_ms', ARGV[1])
redis.call('HSETNX', KEYS[1], 'ended_at_ms', ARGV[1])
redis.call('SREM', KEYS[4], ARGV[2])
return 'completed'
"""


def new_campaign_id() -> str:
    """``cmp_`` + 12 hex digits."""
    return "cmp_" + secrets.token_hex(6)


def new_attempt_id() -> str:
    """``att_`` + 16 hex digits."""
    return "att_" + secrets.token_hex(8)


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


@dataclass(frozen=True, slots=True)
class NewContact:
    """A validated contact with its import row and first due time (ms)."""

    row: int
    contact: Contact
    due_ms: int


def _opt_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


class CampaignStore:
    """Redis access for campaigns (see the module doc for the scripts)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, retention_s: int = 30 * 86400) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_s = retention_s
        self._claim = redis.register_script(_CLAIM)
        self._dial = redis.register_script(_DIAL)
        self._release = redis.register_script(_RELEASE)
        self._finish_leased = redis.register_script(_FINISH_LEASED)
        self._progress = redis.register_script(_PROGRESS)
        self._finish = redis.register_script(_FINISH)
        self._drain = redis.register_script(_DRAIN)
        self._add = redis.register_script(_ADD)
        self._status = redis.register_script(_STATUS)
        self._complete = redis.register_script(_COMPLETE)

    async def _run(self, op: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except ResponseError:
            raise
        except RedisError as exc:
            raise StoreError(f"{op} failed: {exc}") from exc

    # --- campaigns --------------------------------------------------------------------

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

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as p:
                p.hset(k.campaign(cid), mapping=fields)
                p.zadd(k.campaigns, {cid: now_ms})
                await p.execute()

        await self._run("create campaign", run())
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
        kind, old = await self._run(
            "campaign status",
            self._status(
                keys=[k.campaign(cid), k.campaigns_active],
                args=[new.value, now_ms, stamp_field, cid, *[s.value for s in allowed_from]],
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
                keys=[
                    k.campaign(cid),
                    k.campaign_due(cid),
                    k.campaign_inflight(cid),
                    k.campaigns_active,
                ],
                args=[now_ms, cid],
            ),
        )
        return str(result)

    # --- contacts ---------------------------------------------------------------------

    async def add_contacts(
        self, cid: str, contacts: Sequence[NewContact], now_ms: int
    ) -> list[tuple[NewContact, str | None, str | None]]:
        """Store ``contacts``; for each returns ``(contact, new id, None)`` or
        ``(contact, None, id of the existing contact with that number)``.

        Raises ``CampaignNotFound``, or ``CampaignStateError`` for a finished campaign.
        """
        k = self.keys
        out: list[tuple[NewContact, str | None, str | None]] = []
        for start in range(0, len(contacts), ADD_BATCH):
            batch = contacts[start : start + ADD_BATCH]
            args: list[Any] = [k.contact_prefix(cid), now_ms]
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
                ids = await self._run(
                    "add contacts",
                    self._add(
                        keys=[
                            k.campaign_phones(cid),
                            k.campaign_seq(cid),
                            k.campaign_due(cid),
                            k.campaign_stats(cid),
                            k.campaign(cid),
                        ],
                        args=args,
                    ),
                )
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

    async def contact(self, cid: str, n: str) -> dict[str, str]:
        """The raw contact hash (empty when unknown)."""
        raw: dict[str, str] = await self._run(
            "read contact", self.redis.hgetall(self.keys.contact(cid, n))
        )
        return raw

    async def contact_attempts(self, cid: str, n: str) -> list[dict[str, str]]:
        """The contact's attempt hashes, oldest first."""
        ids = await self._run(
            "contact attempts", self.redis.lrange(self.keys.contact_attempts(cid, n), 0, -1)
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
            "opt out", self.redis.sadd(self.keys.campaign_optouts(cid), phone_hash(e164))
        )

    # --- the dialer's steps -----------------------------------------------------------

    async def claim(
        self,
        cid: str,
        *,
        owner: str,
        now_ms: int,
        lease_ms: int,
        max_concurrent: int,
    ) -> Claim:
        """Lease the first due contact of ``cid`` (see ``Claim``)."""
        k = self.keys
        aid = new_attempt_id()
        kind, value = await self._run(
            "claim",
            self._claim(
                keys=[
                    k.campaign(cid),
                    k.campaign_due(cid),
                    k.campaign_inflight(cid),
                    k.campaign_rate(cid),
                    k.dialer_rate,
                ],
                args=[
                    now_ms,
                    lease_ms,
                    max_concurrent,
                    aid,
                    owner,
                    k.attempt(aid),
                    k.contact_prefix(cid),
                    cid,
                ],
            ),
        )
        if kind == "claimed":
            return Claim("claimed", contact=str(value), attempt=aid)
        if kind in ("wait", "rate"):
            return Claim(str(kind), at_ms=int(float(value)))
        return Claim(str(kind))

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
        kind, value = await self._run(
            "dial",
            self._dial(
                keys=[
                    k.attempt(aid),
                    k.campaign(cid),
                    k.campaign_inflight(cid),
                    k.campaign_rate(cid),
                    k.dialer_rate,
                    k.contact(cid, contact),
                    k.contact_attempts(cid, contact),
                    k.campaign_stats(cid),
                ],
                args=[owner, now_ms, campaign_interval_ms, account_interval_ms, deadline_ms, aid],
            ),
        )
        if kind == "ok":
            return DialResult("ok", number=int(value))
        if kind == "rate":
            return DialResult("rate", at_ms=int(float(value)))
        return DialResult(str(kind))

    async def release(
        self, cid: str, contact: str, aid: str, *, owner: str, due_ms: int, recovered: bool = False
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
                keys=[
                    k.attempt(aid),
                    k.attempt_by_call(call_sid or "-"),
                    k.campaign_inflight(cid),
                ],
                args=[
                    state,
                    stamp_field,
                    now_ms,
                    call_sid,
                    aid,
                    self.retention_s,
                    "" if deadline_ms is None else deadline_ms,
                ],
            ),
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

    async def drain(
        self, cid: str, outcome: Outcome, now_ms: int, reason: str, due_before_ms: int | None = None
    ) -> int:
        """Finish waiting contacts (all, or those due before ``due_before_ms``) with
        ``outcome``; returns how many."""
        k = self.keys
        total = 0
        while True:
            n = await self._run(
                "drain",
                self._drain(
                    keys=[k.campaign_due(cid), k.campaign_stats(cid)],
                    args=[
                        k.contact_prefix(cid),
                        outcome.value,
                        now_ms,
                        "+inf" if due_before_ms is None else f"({due_before_ms}",
                        DRAIN_BATCH,
                        reason,
                    ],
                ),
            )
            total += int(n)
            if int(n) < DRAIN_BATCH:
                return total

    # --- reads for the dialer and callbacks --------------------------------------------

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

    async def next_due_ms(self, cid: str) -> int | None:
        rows = await self._run(
            "next due", self.redis.zrange(self.keys.campaign_due(cid), 0, 0, withscores=True)
        )
        return int(rows[0][1]) if rows else None

    async def stats(self, cid: str) -> dict[str, Any]:
        """Live counters: pending, in_progress, done, attempts, per outcome (see
        ``Campaigns.stats`` for the shape)."""
        k = self.keys
        async with self.redis.pipeline(transaction=True) as p:
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
        }

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
