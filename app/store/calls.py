"""Call records in Redis: the call hash, its event streams and the by-time index.

Key scheme: ``app.store.keys``. Every write is one ``MULTI``/``EXEC`` pipeline that
also refreshes the retention ``EXPIRE`` on each key it touches (and on the call hash),
so a record is never half-written and a call's keys expire together.
Raw phone numbers are never written: only ``app.phone.mask`` output and
``phone_hash`` of the E.164 form.

Listing: besides ``calls:by_time`` every call is in ``calls:idx:{field}:{value}`` sorted
sets (direction, flow, status, campaign, and number for both its from and to hash), kept
in step at write time, so ``query_calls`` pages through a million calls by walking the
smallest matching index instead of scanning.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from app.errors import StoreError
from app.phone import mask, normalize
from app.store.entries import (
    FORBIDDEN_FIELDS,
    USAGE_FIELDS,
    Entry,
    HashValue,
    encode,
    event_entry,
    routing_entry,
    tool_call_entry,
    transcript_entry,
    usage_amounts,
)
from app.store.entries import redact_numbers as redact_numbers
from app.store.keys import CALL_SHARD_TAGS, Keys, call_shard, phone_hash
from app.store.listing import query_shards, recent

log = logging.getLogger(__name__)

#: Call hash fields read back as ``int``.
INT_FIELDS = frozenset(
    {
        "created_at_ms",
        "started_at_ms",
        "ended_at_ms",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "input_audio_tokens",
        "output_audio_tokens",
        "cached_tokens",
        "responses",
    }
)

#: Fields ``create_call`` owns; ``extra`` may not override them.
_CREATE_FIELDS = frozenset(
    {
        "call_sid",
        "direction",
        "from_masked",
        "to_masked",
        "from_hash",
        "to_hash",
        "flow",
        "status",
        "created_at_ms",
    }
)

#: Call hash fields with a ``calls:idx:{field}:{value}`` index (plus ``number``, for
#: ``from_hash`` and ``to_hash``), kept in step by ``create_call`` and ``update_call``.
INDEXED_FIELDS = ("direction", "flow", "status", "campaign")
INDEXED_FIELDS_SET = frozenset(INDEXED_FIELDS)
#: Largest value indexed (longer values are stored but not filterable).
_MAX_INDEX_VALUE = 128

#: ``update_call`` of indexed fields: check the old values are still the ones read just
#: before, move the call between its shard's ``calls:idx:{field}:{value}`` sets, then set
#: the fields (one script: one slot, the call's shard). KEYS[1] call hash; then per
#: reindexed field its old value's index and its new value's (KEYS[1] for none). ARGV:
#: call_sid, retention_s, oldest_ms (trim bound), F (fields reindexed), F triples (field,
#: old value read, new value; "" none), the number of fields to set, their name/value
#: pairs, then the fields to delete. ARGV[1] ends in "!" when the record must exist.
#: Returns "ok", "lost" (no record: nothing written) or "retry" (nothing written: an old
#: value changed meanwhile).
_REINDEX_LUA = """
local created = redis.call('HGET', KEYS[1], 'created_at_ms')
local sid = ARGV[1]
if string.sub(sid, -1) == '!' then
  if not created then return 'lost' end
  sid = string.sub(sid, 1, -2)
end
local nf = tonumber(ARGV[4])
for i = 0, nf - 1 do
  if (redis.call('HGET', KEYS[1], ARGV[5 + 3 * i]) or '') ~= ARGV[6 + 3 * i] then
    return 'retry'
  end
end
if created then
  for i = 0, nf - 1 do
    local old, new = ARGV[6 + 3 * i], ARGV[7 + 3 * i]
    if old ~= '' and old ~= new then redis.call('ZREM', KEYS[2 + 2 * i], sid) end
    if new ~= '' then
      local k = KEYS[3 + 2 * i]
      redis.call('ZADD', k, created, sid)
      redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. ARGV[3])
      redis.call('EXPIRE', k, ARGV[2])
    end
  end
end
local j = 5 + 3 * nf
local nset = tonumber(ARGV[j])
if nset > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, j + 1, j + 2 * nset)) end
if #ARGV > j + 2 * nset then redis.call('HDEL', KEYS[1], unpack(ARGV, j + 2 * nset + 1)) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 'ok'
"""
#: Reads and retries of an ``update_call`` whose indexed fields another writer changed.
_REINDEX_TRIES = 5

#: Carrier call statuses after which a call's ``carrier_status`` never changes (Twilio
#: "Call status values": the call is over).
TERMINAL_CARRIER_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")

#: Apply one status callback in order. KEYS[1] call hash, KEYS[2] its ordering hash.
#: ARGV: status, seq ("" none), at_ms ("" none), retention_s, then the terminal statuses.
#: Returns 1 applied, 0 stale (older sequence number or time, or the call already reached
#: a terminal status), -1 no such call. A call is never resurrected by a late callback.
_CARRIER_STATUS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local terminal = {}
for i = 5, #ARGV do terminal[ARGV[i]] = true end
local cur = redis.call('HGET', KEYS[1], 'carrier_status')
if cur and terminal[cur] then return 0 end
local seq, at = ARGV[2], ARGV[3]
local last_seq = redis.call('HGET', KEYS[2], 'seq')
local last_at = redis.call('HGET', KEYS[2], 'at_ms')
if seq ~= '' and last_seq and tonumber(seq) <= tonumber(last_seq) then return 0 end
if at ~= '' and last_at and tonumber(at) < tonumber(last_at) then return 0 end
redis.call('HSET', KEYS[1], 'carrier_status', ARGV[1])
if seq ~= '' then redis.call('HSET', KEYS[2], 'seq', seq) end
if at ~= '' then redis.call('HSET', KEYS[2], 'at_ms', at) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


def _hash_number(number: str) -> str:
    """``phone_hash`` of the E.164 form; non-numbers (``anonymous``, ``client:x``) as given."""
    try:
        return phone_hash(normalize(number))
    except ValueError:
        return phone_hash(number.strip())


def index_keys(keys: Keys, fields: Mapping[Any, Any]) -> list[str]:
    """The ``calls:idx:*`` sets a call with these hash ``fields`` (``call_sid`` among
    them) belongs in, in its shard: one per ``INDEXED_FIELDS`` value present (and short
    enough), one per distinct number hash."""
    shard = call_shard(str(fields["call_sid"]))
    out = [
        keys.call_index(name, str(fields[name]), shard)
        for name in INDEXED_FIELDS
        if name in fields and 0 < len(str(fields[name])) <= _MAX_INDEX_VALUE
    ]
    for sha in sorted({str(fields[n]) for n in ("from_hash", "to_hash") if fields.get(n)}):
        out.append(keys.call_index("number", sha, shard))
    return out


def _int(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"field {field!r} is not an integer: {value!r}") from exc


class CallStore:
    """Reads and writes call records.

    ``retention_s`` (seconds, ≥ 1) is the TTL refreshed on every write and the age
    beyond which ``calls:by_time`` members are trimmed. ``stream_maxlen`` bounds each
    per-call stream (approximate ``MAXLEN ~``). Every method raises ``StoreError`` when
    Redis fails (the ``RedisError`` is chained) or holds malformed data.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        retention_s: int,
        *,
        stream_maxlen: int = 10_000,
    ) -> None:
        if retention_s < 1:
            raise ValueError("retention_s must be at least 1 second")
        self.redis = redis
        self.keys = keys
        self.retention_s = retention_s
        self.stream_maxlen = stream_maxlen
        self._reindex = redis.register_script(_REINDEX_LUA)
        self._carrier_status = redis.register_script(_CARRIER_STATUS_LUA)

    # --- writes -------------------------------------------------------------------------

    async def create_call(
        self,
        *,
        call_sid: str,
        direction: str,
        from_number: str,
        to_number: str,
        flow: str,
        status: str,
        created_at_ms: int,
        extra: Mapping[Any, HashValue] | None = None,
        only_new: bool = False,
    ) -> bool:
        """Write the call hash and index it in ``calls:by_time``; True when written.

        With ``only_new`` an existing record is left exactly as it is and False is
        returned (the claim is one ``HSETNX``, so of two concurrent creators one wins):
        a repeated webhook never resets a call.

        ``from_number``/``to_number`` are stored only as ``from_masked``/``to_masked``
        and ``from_hash``/``to_hash`` (SHA-256 of the E.164 form). Usage counters start
        at 0. ``extra`` adds fields (e.g. ``campaign``, ``stream_sid``); it may not
        override the fields above nor carry raw numbers (``StoreError``). Index members
        older than the retention are trimmed in the same transaction.
        """
        fields: Entry = {}
        for name, value in (extra or {}).items():
            if not isinstance(name, str):
                raise StoreError(f"field names must be str, not {name!r}")
            if name in _CREATE_FIELDS or name in FORBIDDEN_FIELDS:
                raise StoreError(f"create_call: extra may not set {name!r}")
            if value is not None:
                fields[name] = encode(name, value)
        fields.update(
            {
                "call_sid": call_sid,
                "direction": direction,
                "from_masked": mask(from_number),
                "to_masked": mask(to_number),
                "from_hash": _hash_number(from_number),
                "to_hash": _hash_number(to_number),
                "flow": flow,
                "status": status,
                "created_at_ms": created_at_ms,
                "responses": 0,
            }
        )
        for name in USAGE_FIELDS:
            fields[name] = 0
        key = self.keys.call(call_sid)
        by_time = self.keys.calls_by_time_of(call_sid)  # the call's shard, like its keys
        oldest_ms = created_at_ms - self.retention_s * 1000
        indexes = index_keys(self.keys, fields)

        if only_new:
            claimed = await self._read("create_call", self.redis.hsetnx(key, "call_sid", call_sid))
            if not claimed:
                return False

        def ops(p: Pipeline) -> None:
            p.hset(key, mapping=fields)
            p.expire(key, self.retention_s)
            p.zadd(by_time, {call_sid: created_at_ms})
            p.zremrangebyscore(by_time, "-inf", f"({oldest_ms}")
            for index in indexes:
                p.zadd(index, {call_sid: created_at_ms})
                p.zremrangebyscore(index, "-inf", f"({oldest_ms}")
                p.expire(index, self.retention_s)

        await self._exec("create_call", ops)
        return True

    async def update_call(self, call_sid: str, **fields: HashValue) -> None:
        """Set fields on the call hash (``status="live"``, ``ended_at_ms=...``).

        ``bool`` is stored as ``"1"``/``"0"``; ``None`` deletes the field. Raw-number
        field names (``from_number``...) and other value types raise ``StoreError``.
        """
        bad = FORBIDDEN_FIELDS.intersection(fields)
        if bad:
            raise StoreError(f"update_call: refusing raw-number fields {sorted(bad)}")
        to_set: Entry = {k: encode(k, v) for k, v in fields.items() if v is not None}
        to_del = [k for k, v in fields.items() if v is None]
        if not to_set and not to_del:
            return
        key = self.keys.call(call_sid)
        if INDEXED_FIELDS_SET.isdisjoint(fields):

            def ops(p: Pipeline) -> None:
                if to_set:
                    p.hset(key, mapping=to_set)
                if to_del:
                    p.hdel(key, *to_del)
                p.expire(key, self.retention_s)

            await self._exec("update_call", ops)
            return
        await self.write_fields("update_call", call_sid, to_set, to_del)

    async def write_fields(
        self,
        op: str,
        call_sid: str,
        to_set: Mapping[Any, Any],
        to_del: Sequence[str],
        *,
        only_existing: bool = False,
    ) -> str:
        """Set and delete call hash fields, moving the call between its listing indexes
        for the indexed ones: "ok", or "lost" when ``only_existing`` and there is no
        record (nothing written). Reads the indexed fields' old values, then one script
        (every key declared, all in the call's shard) checks they are unchanged, moves
        the index entries and writes the fields; again when another writer changed them
        in between. Raises ``StoreError`` (naming ``op``)."""
        key, shard = self.keys.call(call_sid), call_shard(call_sid)
        reindex: dict[str, str] = {}
        for name in INDEXED_FIELDS:
            if name in to_set or name in to_del:
                value = str(to_set[name]) if name in to_set else ""
                reindex[name] = value if len(value) <= _MAX_INDEX_VALUE else ""
        names = list(reindex)
        tail: list[Any] = [len(to_set)]
        for name, value in to_set.items():
            tail += [str(name), value]
        tail += list(to_del)
        for _ in range(_REINDEX_TRIES):
            old = await self._read(op, self.redis.hmget(key, names)) if names else []
            index_keys_: list[str] = []
            triples: list[str | int] = []
            for name, was in zip(names, old, strict=True):
                was = str(was) if was is not None else ""
                new = reindex[name]
                index_keys_ += [
                    self.keys.call_index(name, was, shard) if was else key,
                    self.keys.call_index(name, new, shard) if new else key,
                ]
                triples += [name, was, new]
            oldest_ms = time.time_ns() // 1_000_000 - self.retention_s * 1000
            sid_arg = call_sid + "!" if only_existing else call_sid
            args = [sid_arg, self.retention_s, oldest_ms, len(names), *triples, *tail]
            try:
                done = str(await self._reindex(keys=[key, *index_keys_], args=args))
            except RedisError as exc:
                raise StoreError(f"{op} failed: {exc}") from exc
            if done != "retry":
                return done
        raise StoreError(f"{op}: {call_sid} kept changing under the update")

    async def apply_carrier_status(
        self, call_sid: str, status: str, *, seq: int | None, at_ms: int | None
    ) -> int:
        """Set the call's ``carrier_status`` from a status callback, in order.

        ``seq`` is Twilio's ``SequenceNumber`` (per call, from 0), ``at_ms`` the callback's
        ``Timestamp``; a callback older than the last applied one (by either) is stale, and
        nothing replaces a terminal status (``TERMINAL_CARRIER_STATUSES``). Returns 1
        applied, 0 stale, -1 unknown call (nothing written).
        """
        args: list[str | int] = [
            status,
            "" if seq is None else seq,
            "" if at_ms is None else at_ms,
            self.retention_s,
            *TERMINAL_CARRIER_STATUSES,
        ]
        try:
            result = await self._carrier_status(
                keys=[self.keys.call(call_sid), self.keys.callback_order(call_sid)], args=args
            )
        except RedisError as exc:
            raise StoreError(f"apply_carrier_status failed: {exc}") from exc
        return int(result)

    async def add_usage(self, call_sid: str, usage: Mapping[str, Any] | None) -> None:
        """Add one Realtime ``response.done`` ``response.usage`` object to the call's counters.

        Reads ``total_tokens``, ``input_tokens``, ``output_tokens``,
        ``input_token_details.audio_tokens``/``cached_tokens`` and
        ``output_token_details.audio_tokens`` (missing or non-integer values count 0)
        and adds 1 to ``responses``; all with ``HINCRBY`` in one transaction. Not safe to
        retry (a retry after a lost reply counts twice): a live call's usage goes through
        its ``app.store.recorder.CallRecorder``, which writes running totals instead.
        """
        amounts = usage_amounts(usage)
        key = self.keys.call(call_sid)

        def ops(p: Pipeline) -> None:
            for name, amount in amounts.items():
                p.hincrby(key, name, amount)
            p.hincrby(key, "responses", 1)
            p.expire(key, self.retention_s)

        await self._exec("add_usage", ops)

    async def append_transcript(
        self,
        call_sid: str,
        *,
        role: str,
        text: str,
        item_id: str,
        offset_ms: int,
        interrupted: bool,
    ) -> str:
        """Append one transcript line (``transcript_entry``); returns the stream entry id."""
        entry = transcript_entry(
            role=role, text=text, item_id=item_id, offset_ms=offset_ms, interrupted=interrupted
        )
        return await self._append("append_transcript", call_sid, self.keys.transcript, entry)

    async def append_routing(
        self, call_sid: str, *, flow: str, reason: str, target: str, at_ms: int
    ) -> str:
        """Append a routing decision (``routing_entry``); returns the stream entry id."""
        entry = routing_entry(flow=flow, reason=reason, target=target, at_ms=at_ms)
        return await self._append("append_routing", call_sid, self.keys.routing, entry)

    async def append_tool_call(
        self,
        call_sid: str,
        *,
        name: str,
        call_id: str,
        arguments: str,
        result: Mapping[str, Any],
        error: str | None,
        duration_ms: float,
        at_ms: int,
    ) -> str:
        """Append one tool invocation (``tool_call_entry``); returns the stream entry id."""
        entry = tool_call_entry(
            name=name,
            call_id=call_id,
            arguments=arguments,
            result=result,
            error=error,
            duration_ms=duration_ms,
            at_ms=at_ms,
        )
        return await self._append("append_tool_call", call_sid, self.keys.tools, entry)

    async def append_event(
        self, call_sid: str, *, kind: str, fields: Mapping[str, str | int], at_ms: int
    ) -> str:
        """Append a call event (``event_entry``; ``at_ms`` into the call); returns its id."""
        entry = event_entry(kind=kind, fields=fields, at_ms=at_ms)
        return await self._append("append_event", call_sid, self.keys.events, entry)

    async def append_status(
        self,
        call_sid: str,
        *,
        status: str,
        at_ms: int,
        extra: Mapping[Any, HashValue] | None = None,
    ) -> str:
        """Append a status change; ``extra`` fields (not ``status``/``at_ms``) are added.

        Only the stream is written; set the hash's ``status`` with ``update_call``.
        Returns the stream entry id.
        """
        entry: Entry = {}
        for name, value in (extra or {}).items():
            if not isinstance(name, str):
                raise StoreError(f"field names must be str, not {name!r}")
            if name in ("status", "at_ms") or name in FORBIDDEN_FIELDS:
                raise StoreError(f"append_status: extra may not set {name!r}")
            if value is not None:
                entry[name] = encode(name, value)
        entry["status"] = status
        entry["at_ms"] = int(at_ms)
        return await self._append("append_status", call_sid, self.keys.status, entry)

    # --- reads --------------------------------------------------------------------------

    async def get_call(self, call_sid: str) -> dict[str, Any] | None:
        """The call hash, or None. ``INT_FIELDS`` are ``int``, every other field ``str``."""
        raw = await self._read("get_call", self.redis.hgetall(self.keys.call(call_sid)))
        if not raw:
            return None
        return {k: (_int(v, k) if k in INT_FIELDS else v) for k, v in raw.items()}

    async def transcript(self, call_sid: str) -> list[dict[str, Any]]:
        """Transcript lines in order: ``{id, role, text, item_id, offset_ms: int,
        interrupted: bool}``."""
        out = []
        for entry_id, f in await self._range("transcript", self.keys.transcript(call_sid)):
            out.append(
                {
                    "id": entry_id,
                    "role": f.get("role", ""),
                    "text": f.get("text", ""),
                    "item_id": f.get("item_id", ""),
                    "offset_ms": _int(f.get("offset_ms", 0), "offset_ms"),
                    "interrupted": f.get("interrupted") == "1",
                }
            )
        return out

    async def routing(self, call_sid: str) -> list[dict[str, Any]]:
        """Routing decisions in order: ``{id, flow, reason, target, at_ms: int}``."""
        out = []
        for entry_id, f in await self._range("routing", self.keys.routing(call_sid)):
            out.append(
                {
                    "id": entry_id,
                    "flow": f.get("flow", ""),
                    "reason": f.get("reason", ""),
                    "target": f.get("target", ""),
                    "at_ms": _int(f.get("at_ms", 0), "at_ms"),
                }
            )
        return out

    async def tool_calls(self, call_sid: str) -> list[dict[str, Any]]:
        """Tool invocations in order: ``{id, name, call_id, arguments: str, result: dict,
        error: str | None, duration_ms: float, at_ms: int}``."""
        out = []
        for entry_id, f in await self._range("tool_calls", self.keys.tools(call_sid)):
            try:
                result = orjson.loads(f.get("result", "null"))
                duration = float(f.get("duration_ms", 0))
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise StoreError(f"malformed tool call entry {entry_id} for {call_sid}") from exc
            out.append(
                {
                    "id": entry_id,
                    "name": f.get("name", ""),
                    "call_id": f.get("call_id", ""),
                    "arguments": f.get("arguments", ""),
                    "result": result,
                    "error": f.get("error") or None,
                    "duration_ms": duration,
                    "at_ms": _int(f.get("at_ms", 0), "at_ms"),
                }
            )
        return out

    async def statuses(self, call_sid: str) -> list[dict[str, Any]]:
        """Status changes in order: ``{id, status, at_ms: int, **extra (str)}``."""
        out = []
        for entry_id, f in await self._range("statuses", self.keys.status(call_sid)):
            item: dict[str, Any] = {"id": entry_id, **f}
            item["at_ms"] = _int(f.get("at_ms", 0), "at_ms")
            out.append(item)
        return out

    async def events(self, call_sid: str) -> list[dict[str, Any]]:
        """Call events in order (``app.store.recorder.CallRecorder.append_event``):
        ``{id, kind, at_ms: int (ms into the call), **fields (str)}``."""
        out = []
        for entry_id, f in await self._range("events", self.keys.events(call_sid)):
            item: dict[str, Any] = {"id": entry_id, **f}
            item["kind"] = f.get("kind", "")
            item["at_ms"] = _int(f.get("at_ms", 0), "at_ms")
            out.append(item)
        return out

    async def recent_calls(self, *, limit: int = 50, before_ms: int | None = None) -> list[str]:
        """Call SIDs newest first from ``calls:by_time`` (created before ``before_ms``;
        every shard, merged)."""
        sids: list[str] = await self._read(
            "recent_calls", recent(self.redis, self.keys, limit=limit, before_ms=before_ms)
        )
        return sids

    async def backfill_indexes(self, *, batch: int = 500) -> int:
        """Index every call of ``calls:by_time`` in the ``calls:idx:*`` sets (idempotent).

        For calls stored before the indexes existed (a migration runs this once). Calls
        whose record has expired are skipped. Returns how many calls were indexed.
        """
        done = 0
        for shard in CALL_SHARD_TAGS:
            done += await self._backfill_shard(shard, batch)
        return done

    async def _backfill_shard(self, shard: str, batch: int) -> int:
        fields = [*INDEXED_FIELDS, "from_hash", "to_hash", "created_at_ms"]
        done = start = 0
        while True:
            sids: list[str] = await self._read(
                "backfill_indexes",
                self.redis.zrange(self.keys.calls_by_time(shard), start, start + batch - 1),
            )
            if not sids:
                return done
            start += len(sids)
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in sids:
                    pipe.hmget(self.keys.call(sid), fields)
                rows = await self._read("backfill_indexes", pipe.execute())
            entries: list[tuple[str, str, int]] = []
            for sid, values in zip(sids, rows, strict=True):
                row = dict(zip(fields, values, strict=True))
                if not row["created_at_ms"]:
                    continue  # expired
                done += 1
                names = [
                    (name, str(row[name]))
                    for name in INDEXED_FIELDS
                    if row[name] and len(str(row[name])) <= _MAX_INDEX_VALUE
                ]
                names += [("number", str(h)) for h in {row["from_hash"], row["to_hash"]} if h]
                created = int(row["created_at_ms"])
                entries += [(self.keys.call_index(n, v, shard), sid, created) for n, v in names]
            if entries:
                await self._exec("backfill_indexes", functools.partial(self._add_all, entries))

    def _add_all(self, entries: list[tuple[str, str, int]], p: Pipeline) -> None:  # one shard
        for index, sid, created in entries:
            p.zadd(index, {sid: created})
            p.expire(index, self.retention_s)

    async def query_calls(
        self,
        *,
        filters: Mapping[str, str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        after: tuple[int, str] | None = None,
        limit: int = 50,
        budget: int = 5000,
    ) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
        """One page of calls newest first, filtered: ``(calls, next_position)``.

        ``filters`` maps a field of ``INDEXED_FIELDS`` or ``number`` to a value (for
        ``number`` any spelling of a phone number; it matches the caller or the called
        number through ``from_hash``/``to_hash``). ``since_ms``/``until_ms`` bound
        ``created_at_ms`` (inclusive, epoch ms). ``after`` is the ``(created_at_ms,
        call_sid)`` position the previous page ended at. At most ``budget`` candidates are
        examined (one Lua walk per shard, merged: ``app.store.listing``; work bounded
        whatever the number of stored calls), so a
        page may hold fewer than ``limit`` calls and still have a next position;
        ``next_position`` is None when nothing is left. Calls whose records have expired
        are skipped. Each call is ``get_call``'s dict. Raises ``ValueError`` for an
        unknown filter field, ``StoreError`` when Redis fails.
        """
        wanted: list[tuple[str, str]] = []
        for name, value in (filters or {}).items():
            if name == "number":
                wanted.append(("number", _hash_number(value)))
            elif name in INDEXED_FIELDS:
                wanted.append((name, value))
            else:
                raise ValueError(f"cannot filter calls on {name!r}")
        shard_keys = [
            [self.keys.call_index(n, v, shard) for n, v in wanted]
            or [self.keys.calls_by_time(shard)]
            for shard in CALL_SHARD_TAGS
        ]
        try:
            found, position = await query_shards(
                self.redis,
                shard_keys,
                since_ms=since_ms,
                until_ms=until_ms,
                after=after,
                limit=limit,
                budget=budget,
            )
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, sid in found:
                    pipe.hgetall(self.keys.call(sid))
                raws = await pipe.execute() if found else []
        except RedisError as exc:
            raise StoreError(f"query_calls failed: {exc}") from exc
        calls = [
            {k: (_int(v, k) if k in INT_FIELDS else v) for k, v in raw.items()}
            for raw in raws
            if raw
        ]
        return calls, position

    # --- helpers ------------------------------------------------------------------------

    async def _append(
        self,
        op: str,
        call_sid: str,
        key_of: Callable[[str], str],
        entry: Entry,
    ) -> str:
        key = key_of(call_sid)
        call_key = self.keys.call(call_sid)
        results = await self._exec(
            op,
            lambda p: (
                p.xadd(key, dict(entry), maxlen=self.stream_maxlen, approximate=True),
                p.expire(key, self.retention_s),
                p.expire(call_key, self.retention_s),
            ),
        )
        return str(results[0])

    async def _exec(self, op: str, build: Callable[[Pipeline], object]) -> list[Any]:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                build(pipe)
                results: list[Any] = await pipe.execute()
                return results
        except RedisError as exc:
            raise StoreError(f"{op} failed: {exc}") from exc

    async def _read(self, op: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as exc:
            raise StoreError(f"{op} failed: {exc}") from exc

    async def _range(self, op: str, key: str) -> list[tuple[str, dict[str, str]]]:
        entries: list[tuple[str, dict[str, str]]] = await self._read(op, self.redis.xrange(key))
        return entries
