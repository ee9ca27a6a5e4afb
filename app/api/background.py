"""The event consumers one Switchboard process runs beside its calls (lifespan-owned).

``Background.build(services, instance)`` wires the webhook workers (``app.webhooks``):
fan-out, sender and retry mover; later consumers of the events stream join here. Start
it after the admin machinery; stop it after the calls drained and before storage
closes. ``events_workers_enabled`` off runs none of them (another process does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from app.deps import Services
from app.store.event_keys import EventKeys
from app.webhooks.dispatch import WebhookConfig, WebhookWorkers
from app.webhooks.subscriptions import WebhookStore

log = logging.getLogger(__name__)


class Worker(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Background:
    workers: list[Worker] = field(default_factory=list)
    webhooks: WebhookWorkers | None = None

    @classmethod
    def build(cls, services: Services, instance: str) -> Background:
        settings = services.settings
        if not settings.events_workers_enabled:
            return cls()
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
        return cls(workers=[webhooks], webhooks=webhooks)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    async def stop(self) -> None:
        for worker in reversed(self.workers):
            try:
                await worker.stop()
            except Exception:
                log.exception("stopping %r failed", worker)
