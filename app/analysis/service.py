"""``AnalysisService.run(call_sid)``: analyse one finished call and store the result.

Reads the call record, transcript and tool calls, runs the analyzer for the call's flow
within ``analysis_timeout_ms``, validates the fields against the flow's JSON Schema,
stores a ``CallAnalysis`` (``ok`` or ``failed`` with the reason) for the retention
time, emits ``call.analyzed`` and hands a campaign flow's ``campaign_outcome`` on.
Calls whose flow has no ``analysis:`` section, and calls where nothing was said, get
none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
from jsonschema import Draft202012Validator
from redis.exceptions import RedisError

from app.analysis.local import LocalAnalyzer
from app.analysis.model import AnalysisInput, CallAnalysis, ToolUse, Turn
from app.analysis.realtime import RealtimeAnalyzer
from app.errors import AnalysisFailed, StoreError
from app.events import EventBus
from app.realtime.dialect import endpoint
from app.settings import RealtimeDialect, Settings
from app.store.calls import CallStore
from app.store.event_keys import EventKeys
from flows import FlowCatalog
from flows.analysis import AnalysisSettings

log = logging.getLogger(__name__)

#: ``sink(call_sid, outcome)``: records a campaign call's outcome unless it has one.
OutcomeSink = Callable[[str, str], Awaitable[bool]]


class Analyzer(Protocol):
    engine: str
    model: str | None

    async def analyze(self, call: AnalysisInput, spec: AnalysisSettings) -> dict[str, Any]: ...


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def choose_analyzer(settings: Settings) -> Analyzer:
    """The Realtime model for an OpenAI or Azure endpoint; the local analysis for the
    local engine (no key, or a Realtime URL on loopback)."""
    if settings.uses_local_engine or (
        settings.realtime.url is not None and _is_loopback(settings.realtime.url)
    ):
        return LocalAnalyzer()
    target = endpoint(settings)
    model = settings.analysis_model or settings.realtime.model
    azure = settings.realtime.dialect in (RealtimeDialect.azure_ga, RealtimeDialect.azure_beta)
    if settings.analysis_model and not azure:
        parts = urlsplit(target.url)
        query = dict(parse_qsl(parts.query))
        query["model"] = settings.analysis_model
        target = type(target)(
            url=urlunsplit(parts._replace(query=urlencode(query))),
            headers=target.headers,
            beta=target.beta,
        )
    return RealtimeAnalyzer(
        target,
        model,
        settings.analysis_max_transcript_chars,
        open_timeout_s=settings.realtime.connect_timeout_ms / 1000,
    )


def validation_errors(spec: AnalysisSettings, fields: dict[str, Any]) -> list[str]:
    """What is wrong with ``fields`` under the flow's schema (formats checked)."""
    validator = Draft202012Validator(
        spec.fields, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(fields), key=lambda e: list(e.absolute_path))
    return [f"fields{''.join(f'.{p}' for p in e.absolute_path)}: {e.message}" for e in errors[:10]]


class AnalysisService:
    """Runs and stores analyses (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        store: CallStore,
        flows: Callable[[], FlowCatalog],
        *,
        analyzer: Analyzer | None = None,
        outcome_sink: OutcomeSink | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.flows = flows
        self.keys = EventKeys(settings.redis_prefix)
        self.events = EventBus.from_settings(redis, settings)
        self.analyzer = analyzer or choose_analyzer(settings)
        self.outcome_sink = outcome_sink

    async def get(self, call_sid: str) -> CallAnalysis | None:
        """The stored analysis of a call, or None. Raises ``StoreError``."""
        try:
            raw = await self.redis.get(self.keys.analysis(call_sid))
        except RedisError as exc:
            raise StoreError(f"reading the analysis failed: {exc}") from exc
        if not raw:
            return None
        try:
            return CallAnalysis.model_validate_json(raw)
        except ValueError:
            log.error("stored analysis of %s is malformed", call_sid)
            return None

    async def input_for(self, call_sid: str) -> tuple[AnalysisInput, AnalysisSettings] | None:
        """What the analysis of a call reads, or None (no record, no analysis section in
        its flow, nothing said). Raises ``StoreError``."""
        record = await self.store.get_call(call_sid)
        if record is None:
            return None
        flow = self.flows().get(str(record.get("flow", "")))
        if flow is None or flow.analysis is None:
            return None
        lines = await self.store.transcript(call_sid)
        if not any(str(line.get("text", "")).strip() for line in lines):
            return None
        created = int(record.get("created_at_ms") or 0)
        tools = []
        for t in await self.store.tool_calls(call_sid):
            try:
                arguments = orjson.loads(t.get("arguments") or "{}")
            except orjson.JSONDecodeError:
                arguments = {}
            tools.append(
                ToolUse(
                    name=str(t.get("name", "")),
                    arguments=arguments if isinstance(arguments, dict) else {},
                    result=t.get("result"),
                    error=t.get("error") or None,
                    at_ms=max(0, int(t.get("at_ms") or 0) - created) if created else 0,
                )
            )
        call = AnalysisInput(
            call_sid=call_sid,
            flow=flow.name,
            direction=str(record.get("direction", "")),
            end_reason=str(record.get("end_reason", "")),
            turns=[
                Turn(
                    role=str(line.get("role", "")),
                    text=str(line.get("text", "")),
                    offset_ms=int(line.get("offset_ms") or 0),
                    interrupted=bool(line.get("interrupted")),
                )
                for line in lines
            ],
            tools=tools,
        )
        return call, flow.analysis

    async def run(self, call_sid: str, *, again: bool = False) -> CallAnalysis | None:
        """Analyse a call now and store the result (None: nothing to analyse).
        ``again``: a re-run asked for by an operator (``call.analyzed`` is sent again).
        Raises ``StoreError`` only (analysis failures are stored)."""
        found = await self.input_for(call_sid)
        if found is None:
            return None
        call, spec = found
        started = time.perf_counter()
        analyzer = self.analyzer
        try:
            async with asyncio.timeout(self.settings.analysis_timeout_ms / 1000):
                raw = await analyzer.analyze(call, spec)
            fields = raw.get("fields") or {}
            problems = validation_errors(spec, fields)
            if problems:
                raise AnalysisFailed("; ".join(problems))
            success = fields.get(spec.success) if spec.success else None
            result = CallAnalysis(
                status="ok",
                engine="realtime" if analyzer.engine == "realtime" else "local",
                model=analyzer.model,
                summary=raw.get("summary"),
                fields=fields,
                success=success if isinstance(success, bool) else None,
                created_at_ms=time.time_ns() // 1_000_000,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        except (AnalysisFailed, TimeoutError) as exc:
            why = str(exc) or f"no answer within {self.settings.analysis_timeout_ms} ms"
            result = self._failed(analyzer, why, started)
            log.warning("analysis of %s failed: %s", call_sid, why)
        except Exception as exc:  # a bug in an analyzer must not lose the job
            log.exception("analysis of %s crashed", call_sid)
            result = self._failed(analyzer, f"internal error: {exc!r}"[:300], started)
        await self._store(call_sid, result)
        await self._announce(call_sid, call, result, again)
        if result.status == "ok" and spec.campaign_outcome and self.outcome_sink is not None:
            value = result.fields.get(spec.campaign_outcome)
            if isinstance(value, str):
                try:
                    await self.outcome_sink(call_sid, value)
                except (StoreError, ValueError) as exc:
                    log.warning("campaign outcome from the analysis of %s: %s", call_sid, exc)
        return result

    def _failed(self, analyzer: Analyzer, why: str, started: float) -> CallAnalysis:
        return CallAnalysis(
            status="failed",
            engine="realtime" if analyzer.engine == "realtime" else "local",
            model=analyzer.model,
            error=why[:1000],
            created_at_ms=time.time_ns() // 1_000_000,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def _store(self, call_sid: str, result: CallAnalysis) -> None:
        ttl = max(60, self.settings.retention_days * 86400)
        try:
            await self.redis.set(self.keys.analysis(call_sid), result.model_dump_json(), ex=ttl)
        except RedisError as exc:
            raise StoreError(f"storing the analysis failed: {exc}") from exc

    async def _announce(
        self, call_sid: str, call: AnalysisInput, result: CallAnalysis, again: bool
    ) -> None:
        data = {
            "call_sid": call_sid,
            "flow": call.flow,
            "direction": call.direction,
            "analysis": result.model_dump(mode="json"),
        }
        if again:
            await self.events.emit("call.analyzed", data)
        else:
            await self.events.emit_once("call.analyzed", call_sid, data)
