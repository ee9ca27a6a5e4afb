"""The event consumers one Switchboard process runs beside its calls (lifespan-owned).

``Background.build(services, instance)`` wires the webhook workers
(``app.webhooks``: fan-out, sender, retry mover), the post-call analysis
(``app.analysis``; a campaign flow's ``campaign_outcome`` goes to the call's attempt
through the dialer) and the transcript search index (``app.search``). Start it after
the admin machinery; stop it after the calls drained and before storage closes.
``events_workers_enabled`` off runs none of them (another process does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from app.analysis.service import AnalysisService, OutcomeSink
from app.analysis.worker import AnalysisWorker
from app.dialer.models import RESULT_OUTCOMES
from app.dialer.runtime import DialerRuntime
from app.search.index import SearchIndex
from app.search.worker import SearchWorker
from app.services import Services
from app.store.event_keys import EventKeys
from app.webhooks.dispatch import WebhookConfig, WebhookWorkers
from app.webhooks.subscriptions import WebhookStore

log = logging.getLogger(__name__)


class Worker(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


def outcome_sink(dialer: DialerRuntime) -> OutcomeSink:
    """Records an analysis's campaign outcome as the attempt's result, as the
    ``record_outcome`` tool would, when the call recorded none and its attempt is still
    open (an attempt already finished keeps the outcome it was given)."""

    async def sink(call_sid: str, outcome: str) -> bool:
        if outcome not in RESULT_OUTCOMES:
            return False
        aid = await dialer.store.attempt_for_call(call_sid)
        attempt = await dialer.store.attempt(aid) if aid else None
        if not attempt or attempt.get("result") or attempt.get("state") == "done":
            return False
        return await dialer.outcomes.record(call_sid, outcome, "from the post-call analysis")

    return sink


def search_index(services: Services) -> SearchIndex:
    """The transcript search index of this app's Redis and settings."""
    settings = services.settings
    return SearchIndex(
        services.redis,
        EventKeys(services.keys),
        services.store,
        retention_s=settings.retention_days * 86400,
        max_terms=settings.search_max_terms_per_call,
        budget=settings.search_scan_budget,
    )


@dataclass
class Background:
    workers: list[Worker] = field(default_factory=list)
    webhooks: WebhookWorkers | None = None
    analysis: AnalysisService | None = None
    search: SearchIndex | None = None

    @classmethod
    def build(cls, services: Services, instance: str) -> Background:
        """The consumers over ``services`` (campaign outcomes from ``services.dialer``)."""
        settings = services.settings
        analysis = AnalysisService(
            settings,
            services.redis,
            services.store,
            lambda: services.flows,
            outcome_sink=outcome_sink(services.dialer),
        )
        search = search_index(services)
        if not settings.events_workers_enabled:
            return cls(analysis=analysis, search=search)
        keys = EventKeys(services.keys)
        store = WebhookStore(
            services.redis,
            keys,
            policy=settings.webhook_policy,
            max_subscriptions=settings.webhook_max_subscriptions,
        )
        webhooks = WebhookWorkers(
            services.redis, keys, store, WebhookConfig.from_settings(settings), instance
        )
        workers: list[Worker] = [
            webhooks,
            AnalysisWorker(analysis, instance),
            SearchWorker(search, settings, instance),
        ]
        return cls(workers=workers, webhooks=webhooks, analysis=analysis, search=search)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    async def stop(self) -> None:
        for worker in reversed(self.workers):
            try:
                await worker.stop()
            except Exception:
                log.exception("stopping %r failed", worker)
