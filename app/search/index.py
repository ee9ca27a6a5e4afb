"""An inverted index of what was said on calls, kept at write time (no scan at query time).

``index_call`` (run when a call ends, by the ``search`` consumer group) adds the call's
SID to one sorted set per distinct word of its transcript (``{p}search:t:{term}``, score
``created_at_ms``; at most ``search_max_terms_per_call`` words, stop words left out,
plurals and ``-ed``/``-ing`` folded), trimmed to the retention. ``search`` answers a
query (every word must occur) by walking the sorted set of its rarest word newest
first within the time range and checking each candidate's other words (``ZSCORE``) and
the flow filter: the work is bounded by that word's calls in the range and by
``search_scan_budget`` per page, however many calls are stored. Hits come with the
lines that contain the words (snippets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.admin.cursor import decode_cursor, encode_cursor
from app.errors import StoreError
from app.store.calls import CallStore
from app.store.event_keys import EventKeys

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
#: Words too common to search by.
_STOP_TEXT = """
a an and are as at be but by for from has have i i'm in is it it's me my no not of on or so
that the this to was we were what when where which who will with you your yes ok okay um uh oh
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
#: Most words one query may have.
MAX_QUERY_TERMS = 8
#: Candidates read per round trip while walking.
_BATCH = 200


def _fold(word: str) -> str:
    """``orders`` → ``order``, ``shipped`` → ``ship``, ``calling`` → ``call``; a word
    ending in ``ss``/``us``/``is`` keeps its ``s`` (``status``, ``address``)."""
    word = word.split("'", 1)[0]
    for suffix in ("ing", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            if suffix == "s" and word[-2] in "sui":
                return word
            stem = word[: -len(suffix)]
            if suffix != "s" and len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]  # shipped → ship, stopping → stop (but calling → call)
            return stem
    return word


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order of first appearance, without repeats."""
    seen: dict[str, None] = {}
    for raw in _WORD.findall(text.lower()):
        if raw in STOP_WORDS or raw.split("'", 1)[0] in STOP_WORDS or len(raw) < 2:
            continue
        term = _fold(raw)
        if term and len(term) <= 40:
            seen.setdefault(term, None)
    return list(seen)


@dataclass
class SearchPage:
    """``hits``: ``(call_sid, created_at_ms)`` newest first; ``examined``: candidates read."""

    hits: list[tuple[str, int]] = field(default_factory=list)
    next_cursor: str | None = None
    examined: int = 0


class SearchIndex:
    """Writes and queries the index (see the module docstring). Raises ``StoreError``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: EventKeys,
        store: CallStore,
        *,
        retention_s: int,
        max_terms: int = 400,
        budget: int = 20_000,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.retention_s = retention_s
        self.max_terms = max_terms
        self.budget = budget

    async def index_call(self, call_sid: str) -> int:
        """Index a call's transcript; returns how many words. Idempotent."""
        record = await self.store.get_call(call_sid)
        if record is None:
            return 0
        created = int(record.get("created_at_ms") or 0)
        text = " ".join(str(line.get("text", "")) for line in await self.store.transcript(call_sid))
        words = terms(text)[: self.max_terms]
        oldest = created - self.retention_s * 1000
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for term in words:
                    key = self.keys.search_term(term)
                    pipe.zadd(key, {call_sid: created})
                    pipe.zremrangebyscore(key, "-inf", f"({oldest}")
                    pipe.expire(key, self.retention_s)
                pipe.zadd(self.keys.search_indexed, {call_sid: created})
                pipe.zremrangebyscore(self.keys.search_indexed, "-inf", f"({oldest}")
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"indexing call {call_sid} failed: {exc}") from exc
        return len(words)

    async def search(
        self,
        query: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        flow: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> SearchPage:
        """Calls whose transcript has every word of ``query``, newest first. Raises
        ``ValueError`` (no searchable word, too many, a bad cursor) and ``StoreError``."""
        wanted = terms(query)
        if not wanted:
            raise ValueError("the query has no searchable word (stop words are left out)")
        if len(wanted) > MAX_QUERY_TERMS:
            raise ValueError(f"at most {MAX_QUERY_TERMS} words per query")
        after = decode_cursor(cursor) if cursor else None
        top = min(until_ms, after[0]) if until_ms is not None and after else until_ms
        if after and top is None:
            top = after[0]
        bottom = since_ms if since_ms is not None else 0
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for term in wanted:
                    pipe.zcount(
                        self.keys.search_term(term), bottom, top if top is not None else "+inf"
                    )
                counts = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"search failed: {exc}") from exc
        if min(counts) == 0:
            return SearchPage()
        order = sorted(range(len(wanted)), key=lambda i: counts[i])
        rarest, others = wanted[order[0]], [wanted[i] for i in order[1:]]
        page = SearchPage()
        offset = 0
        max_score: Any = top if top is not None else "+inf"
        while len(page.hits) < limit and page.examined < self.budget:
            try:
                batch: list[Any] = await self.redis.zrevrangebyscore(
                    self.keys.search_term(rarest),
                    max_score,
                    bottom,
                    start=offset,
                    num=_BATCH,
                    withscores=True,
                )
            except RedisError as exc:
                raise StoreError(f"search failed: {exc}") from exc
            if not batch:
                page.next_cursor = None  # walked the whole range: no next page
                return page
            offset += len(batch)
            candidates = []
            for member, score in batch:
                sid, at = str(member), int(score)
                if after and at == after[0] and sid >= after[1]:
                    continue  # an earlier page had it
                candidates.append((sid, at))
            page.examined += len(batch)
            for sid, at in await self._matching(candidates, others, flow):
                page.hits.append((sid, at))
                if len(page.hits) == limit:
                    break
            last_sid, last_at = str(batch[-1][0]), int(batch[-1][1])
            if len(page.hits) == limit:
                sid, at = page.hits[-1]
                page.next_cursor = encode_cursor(at, sid)
                return page
            if len(batch) < _BATCH:
                page.next_cursor = None  # the range ends in this batch
                return page
            page.next_cursor = encode_cursor(last_at, last_sid)  # budget spent: go on from here
        return page

    async def _matching(
        self, candidates: list[tuple[str, int]], others: list[str], flow: str | None
    ) -> list[tuple[str, int]]:
        if not candidates:
            return []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, _ in candidates:
                    for term in others:
                        pipe.zscore(self.keys.search_term(term), sid)
                    if flow:
                        pipe.hget(self.store.keys.call(sid), "flow")
                answers = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"search failed: {exc}") from exc
        per = len(others) + (1 if flow else 0)
        out = []
        for i, (sid, at) in enumerate(candidates):
            row = answers[i * per : (i + 1) * per]
            if any(score is None for score in row[: len(others)]):
                continue
            if flow and row[-1] != flow:
                continue
            out.append((sid, at))
        return out


def snippets(lines: list[dict[str, Any]], query: str, limit: int = 3) -> list[dict[str, Any]]:
    """The transcript lines holding a word of ``query`` (at most ``limit``)."""
    wanted = set(terms(query))
    out = []
    for line in lines:
        if wanted & set(terms(str(line.get("text", "")))):
            out.append(
                {
                    "role": line.get("role", ""),
                    "text": str(line.get("text", "")),
                    "offset_ms": int(line.get("offset_ms") or 0),
                }
            )
            if len(out) == limit:
                break
    return out
