"""A live call's writes to its record: safe to retry, and replayed when Redis lost them.

``CallRecorder`` (one per bridged call) turns each write into a ``WriteOp``: a
zero-argument callable that the call's ``app.store.writer.StoreWriter`` queues and
retries, each call returning an awaitable that applies the write *once*, however often
it is retried, whatever Redis went through meanwhile:

- **Stream entries** (transcript, routing, tools, events) carry an explicit stream ID,
  fixed at the op's first attempt, from one per-call clock above every entry the call's
  streams held when it was bridged. A retry after a reply that never came (Redis wrote
  the entry, then the connection broke) finds its ID there and writes nothing.
- **Usage** is written as the call's running totals (``HSET``), not added (``HINCRBY``):
  a retry writes the same numbers again.
- **Loss is checked on every write.** Each op is one Lua script that first checks the
  call hash still has ``created_at_ms`` and the stream still ends at (or after) the
  last entry Redis acknowledged. When Redis came back without them (restarted without
  persistence, or from an older snapshot), ``reconcile`` writes the record again from
  what the recorder knows, then the op runs: the hash as loaded when the call was
  bridged plus every field set since (status, end reason, usage totals, …), its
  ``calls:by_time`` and listing index entries (``app.store.calls.index_keys``), and the
  journal's stream entries above each stream's end, with their IDs, in order.

Builders never raise: an op from input that cannot be stored (a bad ``role``, a raw
number field, a tool result that is not JSON) fails when it runs, and the writer logs
and counts it; the call goes on.

The journal keeps the call's last ``journal_max`` stream entries (the oldest go, and
are counted in ``switchboard_store_unrestorable_total`` if Redis later lost them).
Ops must run one at a time, in order (the writer guarantees it); the first op of a
writer is ``load()``. Only the instance bridging a call writes through its recorder;
the voice webhook's routing entry, written before, is below every ID used here.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import RedisError, ResponseError

from app import metrics
from app.errors import StoreError
from app.store.calls import CallStore, index_keys
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

log = logging.getLogger(__name__)

#: The call's streams the recorder writes (``Keys`` method names).
STREAMS = ("transcript", "routing", "tools", "events")
StreamName = Literal["transcript", "routing", "tools", "events"]
#: Usage totals on the call hash, as the recorder keeps them.
TOTALS = (*USAGE_FIELDS, "responses")
#: Largest hash value indexed (as ``app.store.calls``).
_MAX_INDEX_VALUE = 128
#: Times one op may find its record gone and write it again before it gives up.
_MAX_REPAIRS = 3

#: One stream entry, written once. KEYS[1] call hash, KEYS[2] the stream. ARGV[1] entry
#: id, ARGV[2] id of the last entry Redis acknowledged on this stream ("" none), ARGV[3]
#: retention_s, ARGV[4] maxlen (approximate), ARGV[5..] field/value pairs.
#: Returns {status, id}: "ok" written (id: the entry's, "*"-assigned when another writer's
#: entry is already above ours), "dup" already there, "lost" no call record, "gap" the
#: stream lost entries Redis had acknowledged.
_APPEND_LUA = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
if redis.call('HEXISTS', KEYS[1], 'created_at_ms') == 0 then return {'lost', ''} end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local top_id = top[1] and top[1][1]
if ARGV[2] ~= '' and (not top_id or less(top_id, ARGV[2])) then return {'gap', ''} end
local id = ARGV[1]
if top_id and not less(top_id, id) then
  if #redis.call('XRANGE', KEYS[2], id, id) > 0 then return {'dup', id} end
  id = '*'
end
id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], id, unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'ok', id}
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``"<ms>-<seq>"`` as ``(ms, seq)``; ``ValueError`` if malformed."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class _Journaled:
    stream: StreamName
    id: tuple[int, int]
    entry: Entry


OpKind = Literal["load", "append", "update", "usage", "invalid"]


class WriteOp:
    """One write of a call's record. ``op()`` returns an awaitable that applies it once;
    calling it again (a retry) is safe. ``name`` says what it writes (for logs).

    What a first attempt decides (the entry's stream ID, the usage totals) is kept on the
    op, so every retry writes exactly the same thing."""

    __slots__ = (
        "_recorder",
        "amounts",
        "delete",
        "entry",
        "entry_id",
        "error",
        "kind",
        "name",
        "set",
        "started",
        "stream",
    )

    def __init__(
        self,
        recorder: CallRecorder,
        kind: OpKind,
        name: str,
        *,
        stream: StreamName | None = None,
        entry: Entry | None = None,
        set_fields: dict[str, str | int | float] | None = None,
        delete: tuple[str, ...] = (),
        amounts: dict[str, int] | None = None,
        error: Exception | None = None,
    ) -> None:
        self._recorder = recorder
        self.kind = kind
        self.name = name if stream is None else f"{name}:{stream}"
        self.stream = stream
        self.entry = entry
        self.entry_id: tuple[int, int] | None = None
        self.set = set_fields
        self.delete = delete
        self.amounts = amounts
        self.error = error
        self.started = False

    def __call__(self) -> Awaitable[None]:
        return self._recorder.apply(self)

    def __repr__(self) -> str:
        return f"<WriteOp {self.name}>"


class CallRecorder:
    """The writes of call ``call_sid`` through ``store`` (see the module docstring).

    ``journal_max`` (≥ 0) bounds the stream entries kept for a replay; ``clock_ms``
    (epoch ms) is injectable for tests. The op builders below validate and mask their
    input at once (``ValueError``/``StoreError`` as ``app.store.entries``) and never
    touch Redis; the ops raise ``StoreError`` when Redis fails.
    """

    def __init__(
        self,
        store: CallStore,
        call_sid: str,
        *,
        journal_max: int = 5000,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        if journal_max < 0:
            raise ValueError("journal_max must be >= 0")
        self.store = store
        self.call_sid = call_sid
        self.journal_max = journal_max
        self.clock_ms = clock_ms
        #: The call hash as it should be: loaded when bridged, plus every field set since.
        self.record: dict[str, str] = {}
        #: Fields set (value) or deleted (None) through this recorder.
        self.own: dict[str, str | None] = {}
        self.totals: dict[str, int] = dict.fromkeys(TOTALS, 0)
        self.journal: deque[_Journaled] = deque()
        #: Stream → id of the last entry Redis acknowledged (for the gap check).
        self.acked: dict[str, tuple[int, int]] = {}
        #: Stream → (entries dropped from the journal, newest dropped id).
        self.forgotten: dict[str, tuple[int, tuple[int, int]]] = {}
        self.loaded = False
        #: Times the record was written again after Redis lost it (whole or in part).
        self.restores = 0
        #: Retried entries Redis had written already (a reply lost on the way back).
        self.duplicates = 0
        #: Stream entries Redis lost that could not be written again.
        self.unrestorable = 0
        self._last_id = (0, 0)
        self._created_ms = clock_ms()
        redis = store.redis
        self._append_script = redis.register_script(_APPEND_LUA)

    # --- op builders (no I/O, never raise) --------------------------------------------------

    def _append_op(self, stream: StreamName, build: Callable[[], Entry]) -> WriteOp:
        try:
            entry = build()
        except (ValueError, TypeError, StoreError) as exc:
            return WriteOp(self, "invalid", "append", stream=stream, error=exc)
        return WriteOp(self, "append", "append", stream=stream, entry=entry)

    def load(self) -> WriteOp:
        """Read the call hash and its streams' entries (the base of a replay). A writer's
        first op; the others are right without it, but a lost record comes back bare."""
        return WriteOp(self, "load", "load")

    def append_transcript(
        self, *, role: str, text: str, item_id: str, offset_ms: int, interrupted: bool
    ) -> WriteOp:
        """One transcript line (``app.store.entries.transcript_entry``)."""
        return self._append_op(
            "transcript",
            lambda: transcript_entry(
                role=role, text=text, item_id=item_id, offset_ms=offset_ms, interrupted=interrupted
            ),
        )

    def append_routing(self, *, flow: str, reason: str, target: str, at_ms: int) -> WriteOp:
        """One routing decision (``routing_entry``; ``at_ms`` epoch ms)."""
        return self._append_op(
            "routing", lambda: routing_entry(flow=flow, reason=reason, target=target, at_ms=at_ms)
        )

    def append_tool_call(
        self,
        *,
        name: str,
        call_id: str,
        arguments: str,
        result: Mapping[str, Any],
        error: str | None,
        duration_ms: float,
        at_ms: int,
    ) -> WriteOp:
        """One tool invocation (``tool_call_entry``; ``at_ms`` epoch ms)."""
        return self._append_op(
            "tools",
            lambda: tool_call_entry(
                name=name,
                call_id=call_id,
                arguments=arguments,
                result=result,
                error=error,
                duration_ms=duration_ms,
                at_ms=at_ms,
            ),
        )

    def append_event(self, *, kind: str, fields: Mapping[str, str | int], at_ms: int) -> WriteOp:
        """One call event (``event_entry``: ``kind``, ``at_ms`` ms into the call, fields):
        what the session's ``StoreEvent`` carries."""
        return self._append_op("events", lambda: event_entry(kind=kind, fields=fields, at_ms=at_ms))

    def add_usage(self, usage: Mapping[str, Any] | None) -> WriteOp:
        """One ``response.done`` ``response.usage`` (``app.store.entries.usage_amounts``)
        added to the call's totals and ``responses``; written as the new totals."""
        return WriteOp(self, "usage", "add_usage", amounts=usage_amounts(usage))

    def update_call(self, **fields: HashValue) -> WriteOp:
        """Set call hash fields (``None`` deletes one), as ``CallStore.update_call``."""
        try:
            bad = FORBIDDEN_FIELDS.intersection(fields)
            if bad:
                raise StoreError(f"refusing raw-number fields {sorted(bad)}")
            to_set = {k: encode(k, v) for k, v in fields.items() if v is not None}
        except StoreError as exc:
            return WriteOp(self, "invalid", "update_call", error=exc)
        to_del = tuple(k for k, v in fields.items() if v is None)
        return WriteOp(self, "update", "update_call", set_fields=to_set, delete=to_del)

    # --- applying ---------------------------------------------------------------------------

    async def apply(self, op: WriteOp) -> None:
        """Apply ``op`` once (what ``op()`` awaits): its first attempt fixes what it
        writes; when Redis has lost the record, ``reconcile`` first. ``StoreError``
        (also for an op built from input that cannot be stored: it never writes)."""
        if op.kind == "load":
            await self._load()
            return
        if op.kind == "invalid":
            raise StoreError(f"{op.name} for {self.call_sid}: {op.error}") from op.error
        if not op.started:
            op.started = True
            self._first_attempt(op)
        for _ in range(_MAX_REPAIRS):
            outcome = await (self._append(op) if op.kind == "append" else self._update(op))
            if outcome == "ok":
                return
            await self.reconcile(why=outcome)
        raise StoreError(f"{op.name} for {self.call_sid}: the call record keeps disappearing")

    def _first_attempt(self, op: WriteOp) -> None:
        """Fix what ``op`` writes, and note it (journal, record) before it is written:
        the journal is what a replay writes, so an op given up is written by the next
        reconcile still."""
        if op.kind == "append":
            assert op.stream is not None and op.entry is not None
            op.entry_id = self._new_id()
            self._remember(_Journaled(op.stream, op.entry_id, op.entry))
            return
        if op.kind == "usage":
            assert op.amounts is not None
            for name, amount in op.amounts.items():
                self.totals[name] += amount
            self.totals["responses"] += 1
            op.set = dict(self.totals)
        self._note_fields(op.set or {}, op.delete)

    async def _append(self, op: WriteOp) -> str:
        assert op.stream is not None and op.entry is not None and op.entry_id is not None
        store = self.store
        acked = self.acked.get(op.stream)
        args: list[Any] = [
            _fmt(op.entry_id),
            _fmt(acked) if acked else "",
            store.retention_s,
            store.stream_maxlen,
        ]
        for name, value in op.entry.items():
            args += [name, value]
        key = getattr(store.keys, op.stream)(self.call_sid)
        try:
            status, written = await self._append_script(
                keys=[store.keys.call(self.call_sid), key], args=args
            )
        except RedisError as exc:
            raise StoreError(f"{op.name} failed: {exc}") from exc
        if status in ("lost", "gap"):
            return str(status)
        if status == "dup":
            self.duplicates += 1
        written_id = parse_id(str(written))
        if written_id != op.entry_id:  # another writer's entry was above ours
            self._replace_journaled(op.entry_id, written_id)
            op.entry_id = written_id
            self._last_id = max(self._last_id, written_id)
        self.acked[op.stream] = max(self.acked.get(op.stream, (0, 0)), written_id)
        return "ok"

    async def _update(self, op: WriteOp) -> str:
        return await self._write_fields(op.name, op.set or {}, op.delete)

    async def _write_fields(
        self, name: str, to_set: Mapping[str, str | int | float], to_del: tuple[str, ...]
    ) -> str:
        # One script in the call's slot (every key declared: CallStore.write_fields);
        # "lost" when the record is gone.
        return await self.store.write_fields(
            name, self.call_sid, to_set, to_del, only_existing=True
        )

    async def _load(self) -> None:
        keys, sid, redis = self.store.keys, self.call_sid, self.store.redis
        count = max(self.journal_max, 1)
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.call(sid))
                for stream in STREAMS:
                    pipe.xrevrange(getattr(keys, stream)(sid), "+", "-", count=count)
                raw, *tails = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"load of call {sid} failed: {exc}") from exc
        self.record = {str(k): str(v) for k, v in raw.items()}
        for name in TOTALS:
            value = self.record.get(name, "0")
            self.totals[name] = int(value) if value.isdigit() else 0
        found: list[_Journaled] = []
        for stream, tail in zip(STREAMS, tails, strict=True):
            for entry_id, fields in reversed(tail):
                try:
                    parsed = parse_id(str(entry_id))
                except ValueError:
                    continue
                found.append(_Journaled(stream, parsed, dict(fields)))  # type: ignore[arg-type]
                self.acked[stream] = max(self.acked.get(stream, (0, 0)), parsed)
                self._last_id = max(self._last_id, parsed)
        # The load is the writer's first op: the journal starts with what was there.
        for item in sorted(found, key=lambda j: j.id):
            self._remember(item)
        self.loaded = True

    # --- the journal and the stream id clock ------------------------------------------------

    def _new_id(self) -> tuple[int, int]:
        now = self.clock_ms()
        last_ms, last_seq = self._last_id
        self._last_id = (now, 0) if now > last_ms else (last_ms, last_seq + 1)
        return self._last_id

    def _remember(self, item: _Journaled) -> None:
        if self.journal_max == 0:
            self._forget(item)
            return
        self.journal.append(item)
        while len(self.journal) > self.journal_max:
            self._forget(self.journal.popleft())

    def _forget(self, item: _Journaled) -> None:
        n, newest = self.forgotten.get(item.stream, (0, (0, 0)))
        self.forgotten[item.stream] = (n + 1, max(newest, item.id))

    def _replace_journaled(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        for i, item in enumerate(self.journal):
            if item.id == old:
                self.journal[i] = _Journaled(item.stream, new, item.entry)
                return

    def _note_fields(
        self, to_set: Mapping[str, str | int | float], to_del: tuple[str, ...]
    ) -> None:
        for name, value in to_set.items():
            self.record[name] = str(value)
            self.own[name] = str(value)
        for name in to_del:
            self.record.pop(name, None)
            self.own[name] = None

    # --- reconcile ------------------------------------------------------------------------

    async def reconcile(self, *, why: str = "redis was unreachable") -> int:
        """Make Redis hold the call's record again as far as the recorder knows it.

        Checks the call hash and the end of each stream; appends the journal's entries
        above each end (their own IDs, in order), then writes the hash again when it is
        gone (with its ``calls:by_time`` and listing index entries) or else the fields
        set through the recorder. Idempotent. Returns how many stream entries and hashes
        it wrote; raises ``StoreError`` when Redis fails.
        """
        store, keys, sid, redis = self.store, self.store.keys, self.call_sid, self.store.redis
        journaled = {j.stream for j in self.journal}
        streams = [s for s in STREAMS if s in self.acked or s in self.forgotten or s in journaled]
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hexists(keys.call(sid), "created_at_ms")
                for stream in streams:
                    pipe.xrevrange(getattr(keys, stream)(sid), "+", "-", count=1)
                has_record, *tops = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"reconcile of call {sid} failed: {exc}") from exc
        ends = {
            stream: parse_id(str(top[0][0])) if top else None
            for stream, top in zip(streams, tops, strict=True)
        }
        missing = [j for j in self.journal if j.stream in ends and _above(j.id, ends[j.stream])]
        unrestorable = 0
        for stream, (n, newest) in list(self.forgotten.items()):
            if n and stream in ends and _above(newest, ends[stream]):
                unrestorable += n
                self.forgotten[stream] = (0, newest)
        written = 0
        try:
            if missing:
                async with redis.pipeline(transaction=False) as pipe:
                    for item in missing:
                        key = getattr(keys, item.stream)(sid)
                        pipe.xadd(
                            key,
                            dict(item.entry),
                            id=_fmt(item.id),
                            maxlen=store.stream_maxlen,
                            approximate=True,
                        )
                    for stream in {item.stream for item in missing}:
                        pipe.expire(getattr(keys, stream)(sid), store.retention_s)
                    results = await pipe.execute(raise_on_error=False)
                for result in results:
                    if isinstance(result, ResponseError) and "equal or smaller" in str(result):
                        # The stream has moved past this ID without the entry (deleted by
                        # hand): it cannot be put back in its place.
                        unrestorable += 1
                    elif isinstance(result, Exception):
                        raise result
                    elif not isinstance(result, int):
                        written += 1
            if not has_record:
                await self._restore_hash()
                written += 1
            elif self.own:
                to_set = {k: v for k, v in self.own.items() if v is not None}
                to_del = tuple(k for k, v in self.own.items() if v is None)
                await self._write_fields("reconcile", to_set, to_del)
        except RedisError as exc:
            raise StoreError(f"reconcile of call {sid} failed: {exc}") from exc
        # Entries Redis had acknowledged and lost (the others were never written: the op
        # being retried, or ops given up during the outage).
        lost = [j for j in missing if j.id <= self.acked.get(j.stream, (0, 0))]
        for item in missing:
            self.acked[item.stream] = max(self.acked.get(item.stream, (0, 0)), item.id)
        if unrestorable:
            self.unrestorable += unrestorable
            metrics.STORE_UNRESTORABLE.inc(unrestorable)
            log.error(
                "call %s: Redis lost %d stream entries the journal no longer holds or "
                "cannot put back (store_journal_max=%d); they are gone",
                sid,
                unrestorable,
                self.journal_max,
            )
        if not has_record or lost:
            self.restores += 1
            metrics.STORE_RESTORED.inc()
            log.warning(
                "call %s: Redis came back without %s (%s); wrote %s%d stream entries again",
                sid,
                "its record" if not has_record else f"{len(lost)} of its stream entries",
                why,
                "the record, its index entries and " if not has_record else "",
                len(missing),
            )
        return written

    async def _restore_hash(self) -> None:
        store, keys, sid = self.store, self.store.keys, self.call_sid
        fields: dict[str, str] = {"call_sid": sid, **self.record}
        fields.setdefault("created_at_ms", str(self._created_ms))
        try:
            created = int(fields["created_at_ms"])
        except ValueError:
            created = self._created_ms
            fields["created_at_ms"] = str(created)
        indexes = index_keys(keys, fields)
        async with store.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.call(sid), mapping=fields)  # type: ignore[arg-type]
            pipe.expire(keys.call(sid), store.retention_s)
            pipe.zadd(keys.calls_by_time_of(sid), {sid: created})
            for index in indexes:
                pipe.zadd(index, {sid: created})
                pipe.expire(index, store.retention_s)
            await pipe.execute()


def _fmt(entry_id: tuple[int, int]) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


def _above(entry_id: tuple[int, int], end: tuple[int, int] | None) -> bool:
    return end is None or entry_id > end
