"""Every Redis key Switchboard uses, built from one prefix (default ``sb:``).

Nothing outside ``app/store`` and ``migrations`` spells a key by hand: they ask
``Keys``. ``{p}`` is the prefix; ``{sha}`` is ``phone_hash(e164)``, the hex SHA-256
of an E.164 number, so numbers can be looked up without being stored.

Keys are hash-tagged for Redis Cluster: the cluster hashes only the part in braces.
Below, ``{s}`` is the call's shard tag *with* its braces (``{c12}``: ``call_shard``,
``c0`` … ``c63``), ``{sid}`` its CallSid; ``{cid}`` right after ``campaign:`` or
``attempt:`` keeps its braces too (``{cmp_…}``), and ``{{…}}`` is a value in braces. A
call's keys, its stream token, its listing index entries and its live registry entry
share a slot, so each of its writes is one ``MULTI`` or script, and the call-wide
indexes are ``CALL_SHARDS`` sets merged on read (``app.store.listing``). Every key of a
campaign shares its slot (an attempt id ends in ``.<cid>``), so each dialer script runs
in one slot. Other groups written together (the do-not-call list,
admin keys, the CRM) are written with ``app.store.redis.transact``.

=====================================  ========  ================================================
Key                                    Type      Contents
=====================================  ========  ================================================
``{p}call:{s}:{sid}``                  hash      call_sid, stream_sid, direction, from_masked,
                                                 to_masked, from_hash, to_hash, flow, status,
                                                 created_at_ms, started_at_ms, ended_at_ms,
                                                 end_reason, input_tokens, output_tokens,
                                                 total_tokens, input_audio_tokens,
                                                 output_audio_tokens, cached_tokens, responses,
                                                 campaign (optional). TTL: retention.
``{p}call:{s}:{sid}:transcript``       stream    role (user|assistant), text, item_id,
                                                 offset_ms, interrupted ("0"/"1"). TTL: retention.
``{p}call:{s}:{sid}:routing``          stream    flow, reason, target (numbers masked), at_ms.
                                                 TTL: retention.
``{p}call:{s}:{sid}:tools``            stream    name, call_id, arguments, result (JSON), error,
                                                 duration_ms, at_ms; E.164 numbers in arguments and
                                                 result masked. TTL: retention.
``{p}call:{s}:{sid}:status``           stream    status, at_ms, plus extra fields. TTL: retention.
``{p}call:{s}:{sid}:events``           stream    kind (realtime_lost, realtime_reconnected,
                                                 rollover, fallback, ...), at_ms (ms into the
                                                 call), plus the event's fields. TTL: retention.
``{p}calls:{s}:by_time``               zset      member call_sid, score created_at_ms; members
                                                 older than the retention are trimmed on insert.
``{p}token:{s}:{token}``               string    JSON call context (call_sid, flow, direction,
                                                 from, to, variables, campaign: the raw numbers
                                                 the tools need, for the token's lifetime only);
                                                 one-time media stream token (SET NX EX, redeemed
                                                 with GETDEL).
``{p}call:{s}:{sid}:token``            string    the one token ever issued for the call (so a
                                                 replayed webhook gets no other). TTL: retention.
``{p}call:{s}:{sid}:cbseq``            hash      ``seq``/``at_ms`` of the last applied status
                                                 callback (ordering). TTL: retention.
``{p}call:{s}:{sid}:handoff``          hash      a warm transfer in progress: record (JSON: the
                                                 call context with raw numbers, target, reason,
                                                 briefing, conversation so far), answered,
                                                 declined, connected, outcome, return_token.
                                                 TTL: ``transfer_handoff_ttl_s``.
``{p}audit``                           stream    admin writes: at_ms, actor, key_id, via, ip,
                                                 action, method, path, target, status, detail
                                                 (JSON). Trimmed to ``audit_retention_days``.
``{p}schema:version``                  string    integer: last migration applied (absent = 0).
``{p}schema:lock``                     string    random owner id while a migration runs (PX).
``{p}crm:customer:{account_id}``       hash      account_id, name, phone_masked, tier, email?
``{p}crm:phone:{sha}``                 string    account_id of the customer with that phone.
``{p}orders:{order_id}``               hash      order_id, account_id, item, quantity, status
                                                 (processing|shipped|delivered|cancelled),
                                                 delivery_date (ISO date), created_at_ms.
``{p}orders:seq``                      string    counter; ``INCR`` allocates new order ids.
``{p}campaigns``                       zset      campaign ids scored by created_at_ms (app/dialer).
``{p}campaigns:active``                set       campaign ids the dialers look after: running,
                                                 paused, or cancelled with calls still in flight.
``{p}campaign:{cid}``                  hash      id, name, flow, spec (JSON ``CampaignSpec``),
                                                 status (draft|running|paused|completed|
                                                 cancelled), contacts, created_at_ms,
                                                 started_at_ms, ended_at_ms, updated_at_ms.
``{p}campaign:{cid}:seq``              string    counter; ``INCR`` allocates contact ids 1, 2, …
``{p}campaign:{cid}:contact:{n}``      hash      id, phone (raw E.164: the one place a number is
                                                 kept, to dial it), phone_masked, phone_hash, tz,
                                                 variables (JSON), row, state (pending|leased|
                                                 dialing|done), outcome, reason, attempts,
                                                 due_at_ms, done_at_ms, last_attempt,
                                                 current_attempt, ``o:{outcome}`` counters of
                                                 attempt outcomes.
``{p}campaign:{cid}:history:{n}``      list      attempt ids of contact n, oldest first.
``{p}campaign:{cid}:phones``           hash      ``{sha}`` → contact id (duplicate check).
``{p}campaign:{cid}:due``              zset      contact ids waiting, scored by due time (ms).
``{p}campaign:{cid}:inflight``         zset      attempt ids leased or on a call, scored by their
                                                 lease/call deadline (ms); its size is the
                                                 campaign's concurrency across all dialers.
``{p}campaign:{cid}:optouts``          set       ``{sha}`` of numbers opted out of the campaign.
``{p}campaign:{cid}:stats``            hash      dialed, recovered, lost, ``outcome:{o}`` (contacts
                                                 done per outcome), ``attempt:{o}`` (attempts per
                                                 outcome).
``{p}campaign:{cid}:rate``             string    ms of the campaign's next free call slot (CPS).
``{p}dialer:rate``                     string    ms of the account's next free call slot (CPS).
``{p}dialer:instances``                zset      dialer ids scored by last heartbeat (ms).
``{p}attempt:{cid}:{aid}``             hash      id, campaign, contact, number, state (leased|
                                                 dialing|placed|ringing|answered|done), owner,
                                                 due_at_ms, leased_at_ms, dialed_at_ms,
                                                 placed_at_ms, ringing_at_ms, answered_at_ms,
                                                 ended_at_ms, call_sid, carrier_status,
                                                 amd_at_ms, answered_by, result, result_detail,
                                                 result_at_ms, outcome, decision, retry_at_ms,
                                                 error, voicemail_at_ms.
``{p}attempts:by_call:{{sid}}``        string    attempt id of an outbound call. TTL: retention.
``{p}calls:{s}:idx:{field}:{value}``   zset      call_sid → created_at_ms for one filter value:
                                                 ``direction``, ``flow``, ``status``, ``campaign``
                                                 (value as stored) and ``number`` (value is
                                                 ``{sha}`` of the from *or* to number). Trimmed
                                                 to the retention on insert; TTL: retention.
``{p}admin:key:{key_id}``              hash      key_id, name, scope (read|write), secret_sha256,
                                                 created_at_ms, last_used_ms?, revoked_at_ms?
``{p}admin:keys``                      zset      key_id → created_at_ms (every key ever made).
``{p}admin:session:{token_sha}``       hash      key_id, csrf, created_at_ms: an operator-page
                                                 login (cookie holds the token). TTL: session.
``{p}admin:authfail:{ip}``             string    failed admin auth attempts from one client IP
                                                 in the current window (INCR, EXPIRE window).
``{p}dnc:entries``                     hash      ``{sha}`` → JSON {number_masked, reason,
                                                 added_at_ms, added_by}: do-not-call list.
``{p}dnc:by_time``                     zset      ``{sha}`` → added_at_ms (listing order).
``{p}live:{s}:calls``                  zset      call_sid → heartbeat deadline (epoch ms) of a
                                                 call bridged by some instance right now; a
                                                 member past its deadline (its instance died)
                                                 is claimed by one instance's orphan reaper.
``{p}live:call:{s}:{sid}``             hash      call_sid, instance, flow, direction, from_masked,
                                                 to_masked, started_at_ms, heartbeat_ms. TTL: a
                                                 few heartbeats.
``{p}control:{{instance}}``            channel   pub/sub: operator commands for one instance.
``{p}control:{all}``                   channel   pub/sub: commands for every instance (reload).
``{p}control:reply:{{request_id}}``    channel   pub/sub: the answer to one command.
=====================================  ========  ================================================

All times are Unix epoch milliseconds (``*_ms``). Raw phone numbers are never stored in
call records (they keep ``app.phone.mask`` output plus the hash); the only raw numbers
are campaign contacts', which the dialer needs to dial (deleted with the campaign).
Every Lua script receives all its keys in ``KEYS``, all in one slot.
"""

from __future__ import annotations

import hashlib
import zlib

DEFAULT_PREFIX = "sb:"


def phone_hash(e164: str) -> str:
    """Hex SHA-256 of an E.164 number (``+15555550123``): a lookup key that is not the number.

    Unsalted on purpose so any process can compute it; it hides numbers from casual
    reads of Redis, not from someone who can enumerate the number space.
    """
    return hashlib.sha256(e164.encode("utf-8")).hexdigest()


#: Shards of every call-wide index (``calls_by_time``, ``call_index``, ``live_calls``).
#: Fixed for a data set: a call's keys and index entries are found by ``call_shard``.
CALL_SHARDS = 64
#: The hash tags of the shards, ``c0`` … ``c63``.
CALL_SHARD_TAGS = tuple(f"c{n}" for n in range(CALL_SHARDS))


def call_shard(call_sid: str) -> str:
    """The shard (hash tag) of a call: its keys, its stream token, its listing index
    entries and its live registry entry are all in that one slot, so every write of a
    call is one ``MULTI`` or script on a Redis Cluster; 64 shards spread calls over the
    cluster's nodes, and listings read the shards and merge them."""
    return CALL_SHARD_TAGS[zlib.crc32(call_sid.encode("utf-8")) % CALL_SHARDS]


def attempt_campaign(aid: str) -> str | None:
    """The campaign id an attempt id names (``att_1f2e….cmp_a678…`` → ``cmp_a678…``), or
    None for an id without one."""
    head, dot, cid = aid.rpartition(".")
    return cid if dot and head and cid else None


class Keys:
    """Key names under one prefix (see the module docstring for the scheme).

    ``prefix`` must be non-empty and is normally ``Settings.redis_prefix`` (``"sb:"``);
    tests use a prefix of their own. Raises ``ValueError`` for an empty prefix.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("the Redis key prefix must not be empty")
        if "{" in prefix or "}" in prefix:
            raise ValueError("the Redis key prefix may not contain { or } (hash tags)")
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"Keys({self.prefix!r})"

    # --- calls ------------------------------------------------------------------------

    def call(self, call_sid: str) -> str:
        """Hash with the call record; every key of the call starts with this, and carries
        its shard's hash tag (``call_shard``), as do the listing indexes it is in."""
        return f"{self.prefix}call:{{{call_shard(call_sid)}}}:{call_sid}"

    def transcript(self, call_sid: str) -> str:
        """Stream of transcript lines."""
        return f"{self.call(call_sid)}:transcript"

    def routing(self, call_sid: str) -> str:
        """Stream of routing decisions (flow chosen, transfers)."""
        return f"{self.call(call_sid)}:routing"

    def tools(self, call_sid: str) -> str:
        """Stream of tool invocations."""
        return f"{self.call(call_sid)}:tools"

    def status(self, call_sid: str) -> str:
        """Stream of status changes."""
        return f"{self.call(call_sid)}:status"

    def events(self, call_sid: str) -> str:
        """Stream of call events beside the transcript (Realtime lost/reconnected, ...)."""
        return f"{self.call(call_sid)}:events"

    def call_keys(self, call_sid: str) -> tuple[str, str, str, str, str, str]:
        """Every per-call key: record, transcript, routing, tools, status, events."""
        return (
            self.call(call_sid),
            self.transcript(call_sid),
            self.routing(call_sid),
            self.tools(call_sid),
            self.status(call_sid),
            self.events(call_sid),
        )

    def calls_by_time(self, shard: str) -> str:
        """Sorted set of one shard's call SIDs scored by ``created_at_ms`` (the listing
        reads every shard of ``CALL_SHARD_TAGS`` and merges them)."""
        return f"{self.prefix}calls:{{{shard}}}:by_time"

    def calls_by_time_of(self, call_sid: str) -> str:
        """The ``calls_by_time`` set ``call_sid`` is in."""
        return self.calls_by_time(call_shard(call_sid))

    # --- media stream tokens ----------------------------------------------------------

    def token(self, token: str) -> str:
        """One-time stream token → the call's context (JSON). A token starts with its
        call's shard tag (``c12.…``: ``StreamTokens``) and is kept in that slot; one
        without a valid tag gets an untagged name (and is never found)."""
        tag = token.partition(".")[0]
        if tag in CALL_SHARD_TAGS:
            return f"{self.prefix}token:{{{tag}}}:{token}"
        return f"{self.prefix}token:{token}"

    def call_token(self, call_sid: str) -> str:
        """The one stream token issued for a call (marker against re-issue)."""
        return f"{self.call(call_sid)}:token"

    def handoff(self, call_sid: str) -> str:
        """Hash of a warm transfer in progress (``app.store.handoffs``): the conversation so
        far, the briefing, and the steps the whisper and ``<Dial action>`` callbacks saw."""
        return f"{self.call(call_sid)}:handoff"

    def callback_order(self, call_sid: str) -> str:
        """Hash with the sequence number and time of the last applied status callback."""
        return f"{self.call(call_sid)}:cbseq"

    # --- audit trail ------------------------------------------------------------------

    @property
    def audit(self) -> str:
        """Stream of admin writes (who, what, when, from where)."""
        return f"{self.prefix}audit"

    # --- schema -----------------------------------------------------------------------

    @property
    def schema_version(self) -> str:
        return f"{self.prefix}schema:version"

    @property
    def schema_lock(self) -> str:
        return f"{self.prefix}schema:lock"

    # --- CRM and orders ---------------------------------------------------------------

    def customer(self, account_id: str) -> str:
        """Hash with one customer."""
        return f"{self.prefix}crm:customer:{account_id}"

    def customer_phone(self, e164: str) -> str:
        """Phone index entry for an E.164 number (the key holds its hash, not the number)."""
        return f"{self.prefix}crm:phone:{phone_hash(e164)}"

    def order(self, order_id: str) -> str:
        """Hash with one order."""
        return f"{self.prefix}orders:{order_id}"

    @property
    def orders_seq(self) -> str:
        """Counter allocating order ids."""
        return f"{self.prefix}orders:seq"

    # --- call list indexes ------------------------------------------------------------

    def call_index(self, field: str, value: str, shard: str) -> str:
        """Sorted set of one shard's call SIDs (score ``created_at_ms``) whose ``field``
        is ``value`` (a call is in its own shard's sets: ``call_shard``).

        ``field`` is one of ``direction``, ``flow``, ``status``, ``campaign``, ``number``
        (for ``number`` pass ``phone_hash`` of the E.164 form, never the number).
        """
        return f"{self.prefix}calls:{{{shard}}}:idx:{field}:{value}"

    # --- admin API --------------------------------------------------------------------

    def admin_key(self, key_id: str) -> str:
        """Hash with one admin API key (its secret only as a SHA-256)."""
        return f"{self.prefix}admin:key:{key_id}"

    @property
    def admin_keys(self) -> str:
        """Sorted set of admin key ids scored by ``created_at_ms``."""
        return f"{self.prefix}admin:keys"

    def admin_session(self, token_sha: str) -> str:
        """Hash with one operator-page login, by the SHA-256 of its cookie token."""
        return f"{self.prefix}admin:session:{token_sha}"

    def admin_auth_failures(self, client_ip: str) -> str:
        """Counter of failed admin auth attempts from ``client_ip`` in the current window."""
        return f"{self.prefix}admin:authfail:{client_ip}"

    # --- do-not-call list -------------------------------------------------------------

    @property
    def dnc_entries(self) -> str:
        """Hash ``phone_hash`` → JSON entry of the do-not-call list."""
        return f"{self.prefix}dnc:entries"

    @property
    def dnc_by_time(self) -> str:
        """Sorted set ``phone_hash`` → ``added_at_ms`` of the do-not-call list."""
        return f"{self.prefix}dnc:by_time"

    # --- live calls across instances --------------------------------------------------

    def live_calls(self, shard: str) -> str:
        """Sorted set of one shard's live call SIDs scored by their heartbeat deadline
        (epoch ms); the registry reads every shard of ``CALL_SHARD_TAGS``."""
        return f"{self.prefix}live:{{{shard}}}:calls"

    def live_calls_of(self, call_sid: str) -> str:
        """The ``live_calls`` set ``call_sid`` is in."""
        return self.live_calls(call_shard(call_sid))

    def live_call(self, call_sid: str) -> str:
        """Hash describing one live call and the instance that holds it."""
        return f"{self.prefix}live:call:{{{call_shard(call_sid)}}}:{call_sid}"

    def control(self, instance: str) -> str:
        """Pub/sub channel of operator commands for one instance (``"all"``: broadcast);
        hash-tagged, as sharded channels (``SPUBLISH``) are on a Cluster."""
        return f"{self.prefix}control:{{{instance}}}"

    def control_reply(self, request_id: str) -> str:
        """Pub/sub channel carrying the answer to one command."""
        return f"{self.control_reply_prefix}{request_id}}}"

    @property
    def control_reply_prefix(self) -> str:
        """Every ``control_reply`` channel starts with this."""
        return f"{self.prefix}control:reply:{{"

    # --- outbound campaigns (app/dialer) ----------------------------------------------

    @property
    def campaigns(self) -> str:
        """Sorted set of campaign ids by ``created_at_ms``."""
        return f"{self.prefix}campaigns"

    @property
    def campaigns_active(self) -> str:
        """Set of campaign ids the dialers look after."""
        return f"{self.prefix}campaigns:active"

    def campaign(self, cid: str) -> str:
        """Hash with one campaign; every key of the campaign starts with this (its hash
        tag ``{cid}``: one slot on a Cluster)."""
        return f"{self.prefix}campaign:{{{cid}}}"

    def campaign_seq(self, cid: str) -> str:
        """Counter allocating contact ids in a campaign."""
        return f"{self.campaign(cid)}:seq"

    def contact(self, cid: str, n: str | int) -> str:
        """Hash with one contact."""
        return f"{self.campaign(cid)}:contact:{n}"

    def contact_attempts(self, cid: str, n: str | int) -> str:
        """List of a contact's attempt ids."""
        return f"{self.campaign(cid)}:history:{n}"

    def campaign_phones(self, cid: str) -> str:
        """Hash ``phone_hash`` → contact id."""
        return f"{self.campaign(cid)}:phones"

    def campaign_due(self, cid: str) -> str:
        """Sorted set of waiting contact ids by due time."""
        return f"{self.campaign(cid)}:due"

    def campaign_inflight(self, cid: str) -> str:
        """Sorted set of leased / on-call attempt ids by deadline."""
        return f"{self.campaign(cid)}:inflight"

    def campaign_optouts(self, cid: str) -> str:
        """Set of phone hashes opted out of one campaign."""
        return f"{self.campaign(cid)}:optouts"

    def campaign_stats(self, cid: str) -> str:
        """Hash of campaign counters."""
        return f"{self.campaign(cid)}:stats"

    def campaign_rate(self, cid: str) -> str:
        """The campaign's next free call slot (ms)."""
        return f"{self.campaign(cid)}:rate"

    @property
    def dialer_rate(self) -> str:
        """The account's next free call slot (ms)."""
        return f"{self.prefix}dialer:rate"

    @property
    def dialer_instances(self) -> str:
        """Sorted set of dialer ids by last heartbeat."""
        return f"{self.prefix}dialer:instances"

    def attempt(self, aid: str) -> str:
        """Hash with one call attempt, in its campaign's slot: an attempt id names its
        campaign (``att_<hex>.<cid>``, ``attempt_campaign``). An id without one (made
        before hash tags) keeps the untagged name it was stored under."""
        cid = attempt_campaign(aid)
        if cid is None:
            return f"{self.prefix}attempt:{aid}"
        return f"{self.prefix}attempt:{{{cid}}}:{aid}"

    def attempt_by_call(self, call_sid: str) -> str:
        """Attempt id of an outbound call (in the call's slot)."""
        return f"{self.prefix}attempts:by_call:{{{call_sid}}}"
