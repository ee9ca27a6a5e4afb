"""Webhook delivery: fan-out, sending with retries, dead letters.

Three loops run on every instance (``WebhookWorkers``), all sharing Redis:

1. **Fan-out** (group ``webhooks`` on the events stream): one delivery per enabled
   subscription that wants the event and existed when it happened, appended to the
   deliveries stream in the same ``MULTI`` that acknowledges the event, so an event is
   fanned out exactly once even when an instance dies half-way.
2. **Sender** (group ``senders`` on the deliveries stream): POSTs the event's JSON
   envelope, signed (``app.webhooks.signing``), within ``webhook_timeout_ms``, at most
   ``webhook_concurrency`` at once. A 2xx is delivered; anything else (another status,
   a timeout, a refused connection, a destination the policy refuses) is a failure:
   the delivery is put in the retry set, due after ``webhook_retry_base_ms`` × 2^(n−1)
   (capped at ``webhook_retry_max_ms``, ±10 % jitter), or dead-lettered once the next
   attempt would fall after ``webhook_retry_window_s`` from the event. The outcome and
   the acknowledgement go in one ``MULTI``, with a line in the subscription's log.
3. **Retry mover**: moves due deliveries from the retry set back to the deliveries
   stream (one Lua script: atomic, so no instance moves one twice).

A delivery is made at least once; a receiver that answered 2xx is not called again for
it, except after an instance died between the request and the acknowledgement (the
entry is then taken over after ``events_claim_idle_ms``): receivers deduplicate on
``Switchboard-Event-Id``. Requests carry ``Switchboard-Event``, ``Switchboard-Event-Id``,
``Switchboard-Delivery-Attempt`` and ``Switchboard-Signature``; redirects are not
followed and the response body is never read. Nothing here runs on a call's path: a
slow or failing receiver delays only other deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import StoreError
from app.events.bus import Event
from app.events.consumer import StreamConsumer
from app.loops import raise_if_cancelling
from app.store.event_keys import GROUP_SENDERS, GROUP_WEBHOOKS, EventKeys
from app.webhooks.signing import SIGNATURE_HEADER, sign
from app.webhooks.subscriptions import Policy, Subscription, WebhookStore, destination_refusal

log = logging.getLogger(__name__)

USER_AGENT = "Switchboard-Webhooks/0.1"
#: Deliveries moved from the retry set per script call.
_MOVE_BATCH = 200

# KEYS[1] retry zset, KEYS[2] deliveries stream; ARGV[1] now ms, ARGV[2] batch.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'd', member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Back-off of failed deliveries (all ms but ``window_s``)."""

    base_ms: int = 10_000
    max_ms: int = 3_600_000
    window_s: int = 86_400
    jitter: float = 0.1

    def wait_ms(self, attempt: int) -> int:
        """Wait before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        wait = min(self.max_ms, self.base_ms * 2 ** max(0, attempt - 1))
        return max(1, int(wait * random.uniform(1 - self.jitter, 1 + self.jitter)))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of one event to one subscription."""

    sub: str
    event_id: str
    type: str
    attempt: int
    first_at_ms: int
    body: str

    def as_json(self) -> str:
        return orjson.dumps(
            {
                "sub": self.sub,
                "event_id": self.event_id,
                "type": self.type,
                "attempt": self.attempt,
                "first_at_ms": self.first_at_ms,
                "body": self.body,
            }
        ).decode()

    @classmethod
    def from_json(cls, raw: str) -> Delivery:
        data = orjson.loads(raw)
        return cls(
            sub=str(data["sub"]),
            event_id=str(data["event_id"]),
            type=str(data["type"]),
            attempt=int(data["attempt"]),
            first_at_ms=int(data["first_at_ms"]),
            body=str(data["body"]),
        )


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    timeout_s: float = 5.0
    concurrency: int = 8
    retry: RetryPolicy = RetryPolicy()
    log_max: int = 1000
    dead_max: int = 10_000
    policy: Policy = "public"
    poll_ms: int = 1000
    claim_idle_ms: int = 120_000
    stop_grace_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Any) -> WebhookConfig:
        return cls(
            timeout_s=settings.webhook_timeout_ms / 1000,
            concurrency=settings.webhook_concurrency,
            retry=RetryPolicy(
                base_ms=settings.webhook_retry_base_ms,
                max_ms=settings.webhook_retry_max_ms,
                window_s=settings.webhook_retry_window_s,
            ),
            log_max=settings.webhook_log_max,
            dead_max=settings.webhook_dead_max,
            policy=settings.webhook_policy,
            poll_ms=settings.events_poll_ms,
            claim_idle_ms=settings.events_claim_idle_ms,
            stop_grace_s=settings.events_stop_grace_ms / 1000,
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def enqueue(redis: aioredis.Redis, keys: EventKeys, sub: Subscription, event: Event) -> None:
    """Deliver ``event`` to ``sub`` alone (a ping), through the same machinery. Raises
    ``StoreError``."""
    delivery = Delivery(
        sub=sub.id,
        event_id=event.id,
        type=event.type,
        attempt=1,
        first_at_ms=event.created_at_ms,
        body=event.body.decode(),
    )
    try:
        await redis.xadd(keys.deliveries, {"d": delivery.as_json()})
    except RedisError as exc:
        raise StoreError(f"webhook enqueue failed: {exc}") from exc


class WebhookWorkers:
    """The three loops of the module docstring for one instance (``consumer`` names it
    in the consumer groups). ``start``/``stop`` own their tasks."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: EventKeys,
        store: WebhookStore,
        config: WebhookConfig,
        consumer: str,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.config = config
        self.consumer = consumer
        self._move = redis.register_script(_MOVE_DUE)
        self._sem = asyncio.Semaphore(config.concurrency)
        self._sending: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.fanout = StreamConsumer(
            redis,
            stream=keys.events,
            group=GROUP_WEBHOOKS,
            consumer=consumer,
            handler=self._fan_out,
            block_ms=config.poll_ms,
            claim_idle_ms=config.claim_idle_ms,
        )
        self.sender = StreamConsumer(
            redis,
            stream=keys.deliveries,
            group=GROUP_SENDERS,
            consumer=consumer,
            handler=self._spawn_send,
            block_ms=config.poll_ms,
            claim_idle_ms=config.claim_idle_ms,
            batch=config.concurrency,
            slots=self._free_slots,
            delete_acked=True,
        )

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout_s),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=self.config.concurrency),
            headers={"User-Agent": USER_AGENT},
        )
        self._tasks = [
            asyncio.create_task(self.fanout.run(), name="webhooks:fanout"),
            asyncio.create_task(self.sender.run(), name="webhooks:sender"),
            asyncio.create_task(self._mover(), name="webhooks:retry-mover"),
        ]

    async def stop(self) -> None:
        """Stop reading; deliveries in flight get ``timeout_s`` to finish (unfinished ones
        are taken over by another instance later)."""
        for task in self._tasks:
            task.cancel()
        _, stuck = await asyncio.wait(self._tasks, timeout=self.config.stop_grace_s)
        for task in stuck:
            log.error("webhook task %s did not stop", task.get_name())
        self._tasks = []
        if self._sending:
            _, pending = await asyncio.wait(self._sending, timeout=self.config.timeout_s + 1)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- fan-out ----------------------------------------------------------------------

    async def _fan_out(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            event = Event.from_fields(entry_id, fields)
        except ValueError as exc:
            log.error("webhooks: skipping %s", exc)
            await self.fanout.ack(entry_id)
            return
        subs = [
            s
            for s in await self.store.all()
            if s.enabled and s.wants(event.type) and event.created_at_ms >= s.created_at_ms
        ]
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for sub in subs:
                    delivery = Delivery(
                        sub=sub.id,
                        event_id=event.id,
                        type=event.type,
                        attempt=1,
                        first_at_ms=event.created_at_ms,
                        body=event.body.decode(),
                    )
                    pipe.xadd(self.keys.deliveries, {"d": delivery.as_json()})
                self.fanout.ack_ops(pipe, entry_id)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"webhook fan-out failed: {exc}") from exc
        if subs:
            log.info("event %s %s → %d webhook(s)", event.type, event.id, len(subs))

    # --- sending ----------------------------------------------------------------------

    async def _free_slots(self) -> int:
        return self.config.concurrency - len(self._sending)

    async def _spawn_send(self, entry_id: str, fields: dict[str, str]) -> None:
        await self._sem.acquire()
        task = asyncio.create_task(self._send_entry(entry_id, fields), name=f"webhook:{entry_id}")
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._sem.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery task failed: %r", task.exception())

    async def _send_entry(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            delivery = Delivery.from_json(fields.get("d", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.error("webhooks: malformed delivery %s dropped", entry_id)
            await self.sender.ack(entry_id)
            return
        try:
            await self.deliver(entry_id, delivery)
        except StoreError as exc:  # left pending: taken over after claim_idle_ms
            log.warning("webhook delivery %s not recorded: %s", entry_id, exc)

    async def deliver(self, entry_id: str, delivery: Delivery) -> None:
        """Make one attempt and record its outcome (``StoreError`` leaves it pending)."""
        sub = await self.store.get(delivery.sub)
        if sub is None or not sub.enabled:
            await self._record(entry_id, delivery, "skipped", 0, "subscription gone or disabled")
            return
        started = time.perf_counter()
        status, error = 0, ""
        refusal = await destination_refusal(sub.url, self.config.policy)
        if refusal:
            error = refusal
        else:
            status, error = await self._post(sub, delivery)
        duration_ms = (time.perf_counter() - started) * 1000
        if 200 <= status < 300:
            await self._record(entry_id, delivery, "delivered", status, "", duration_ms)
            return
        now = _now_ms()
        wait = self.config.retry.wait_ms(delivery.attempt)
        deadline = delivery.first_at_ms + self.config.retry.window_s * 1000
        if refusal or now + wait > deadline:
            await self._record(entry_id, delivery, "dead", status, error, duration_ms)
            log.warning(
                "webhook %s: %s %s dead after %d attempt(s): %s",
                sub.id,
                delivery.type,
                delivery.event_id,
                delivery.attempt,
                error,
            )
            return
        await self._record(entry_id, delivery, "retry", status, error, duration_ms, now + wait)

    async def _post(self, sub: Subscription, delivery: Delivery) -> tuple[int, str]:
        assert self._client is not None
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "Switchboard-Event": delivery.type,
            "Switchboard-Event-Id": delivery.event_id,
            "Switchboard-Delivery-Attempt": str(delivery.attempt),
            SIGNATURE_HEADER: sign(sub.secret, body),
        }
        try:
            async with asyncio.timeout(self.config.timeout_s):
                async with self._client.stream(
                    "POST", sub.url, content=body, headers=headers
                ) as response:
                    status = response.status_code
        except TimeoutError:
            return 0, f"no answer within {self.config.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}: {exc}"[:300]
        return status, "" if 200 <= status < 300 else f"HTTP {status}"

    async def _record(
        self,
        entry_id: str,
        delivery: Delivery,
        outcome: str,
        status: int,
        error: str,
        duration_ms: float = 0.0,
        next_at_ms: int | None = None,
    ) -> None:
        line = {
            "at_ms": _now_ms(),
            "event_id": delivery.event_id,
            "type": delivery.type,
            "attempt": delivery.attempt,
            "outcome": outcome,
            "status": status,
            "error": error[:300],
            "duration_ms": round(duration_ms, 1),
            "next_at_ms": next_at_ms or 0,
        }
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                if outcome != "skipped":
                    pipe.xadd(
                        self.keys.webhook_log(delivery.sub),
                        line,  # type: ignore[arg-type]
                        maxlen=self.config.log_max,
                        approximate=True,
                    )
                if outcome == "retry" and next_at_ms is not None:
                    again = Delivery(
                        sub=delivery.sub,
                        event_id=delivery.event_id,
                        type=delivery.type,
                        attempt=delivery.attempt + 1,
                        first_at_ms=delivery.first_at_ms,
                        body=delivery.body,
                    )
                    pipe.zadd(self.keys.retry, {again.as_json(): next_at_ms})
                elif outcome == "dead":
                    pipe.xadd(
                        self.keys.dead,
                        {"d": delivery.as_json(), "error": error[:300], "status": status},
                        maxlen=self.config.dead_max,
                        approximate=True,
                    )
                self.sender.ack_ops(pipe, entry_id)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"webhook delivery record failed: {exc}") from exc

    # --- retries ----------------------------------------------------------------------

    async def move_due(self, now_ms: int | None = None) -> int:
        """Move due retries to the deliveries stream; returns how many."""
        try:
            moved = await self._move(
                keys=[self.keys.retry, self.keys.deliveries],
                args=[now_ms if now_ms is not None else _now_ms(), _MOVE_BATCH],
            )
        except RedisError as exc:
            raise StoreError(f"webhook retry move failed: {exc}") from exc
        return int(moved)

    async def _mover(self) -> None:
        while True:
            try:
                moved = await self.move_due()
                if moved >= _MOVE_BATCH:
                    continue
            except StoreError as exc:
                raise_if_cancelling()
                log.warning("webhooks: %s", exc)
            await asyncio.sleep(self.config.poll_ms / 1000)
