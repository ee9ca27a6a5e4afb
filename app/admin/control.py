"""Operator commands to live calls, delivered over Redis pub/sub to the instance holding them.

Request: the API instance looks the call up in the live registry (``app.admin.live``),
subscribes to a fresh reply channel ``{p}control:reply:{id}``, then publishes a JSON
command on ``{p}control:{instance}``::

    {"id": "<hex>", "op": "hangup" | "transfer" | "say", "call_sid": "CA…",
     "args": {"reason": "...", "to": "+1…", "target": "human", "text": "..."},
     "reply_to": "<reply channel>", "by": "<key name (id)>"}

Every instance's ``ControlListener`` runs the commands for calls in its ``services.live``
and publishes ``{"status": <HTTP status>, "detail": "...", "data": {...}}`` on
``reply_to``. Statuses: 200 done; 404 the call is not live there; 409 the call cannot
take the command now (ending, a transfer already requested); 422 bad arguments (unknown
named target, not a phone number, a destination the transfer policy or the do-not-call
list refuses: ``app.carrier.transfers``). ``send_command`` adds 404 when no instance is
subscribed (it died) and 504 when no answer comes within ``control_timeout_ms``.

``{p}control:{all}`` carries broadcasts (``{"op": "reload_flows", "origin": "<instance>"}``)
with no reply.

On a Redis Cluster the channels are sharded (``SSUBSCRIBE``/``SPUBLISH``, Redis 7): each
lives on the node of its hash slot (``Keys.control`` tags it with the instance, the
request id or ``all``), so a command crosses one node instead of every node of the
cluster; on one Redis (or Sentinel) it is plain ``SUBSCRIBE``/``PUBLISH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from app import metrics
from app.call.state import CallState
from app.errors import StoreError, ToolRefused
from app.logs import call_sid_var
from app.loops import BackgroundLoop, raise_if_cancelling
from app.phone import mask, normalize
from app.store.keys import Keys
from app.store.redis import is_cluster

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

CALL_OPS = frozenset({"hangup", "transfer", "say"})
#: Longest sentence ``say`` accepts (characters).
MAX_SAY_CHARS = 1000


#: Message types of a subscription confirmation and of a message, plain and sharded.
_SUBSCRIBED = frozenset({"subscribe", "ssubscribe"})
_MESSAGE = frozenset({"message", "smessage"})


async def _subscribe(pubsub: Any, sharded: bool, *channels: str) -> None:
    if sharded:
        await pubsub.cluster.initialize()  # the slot map (a no-op once known)
        await pubsub.ssubscribe(*channels)
    else:
        await pubsub.subscribe(*channels)


async def _next_message(pubsub: Any, sharded: bool, wait_s: float) -> dict[str, Any] | None:
    """The next message or subscription confirmation within ``wait_s`` seconds, or None."""
    if sharded:
        msg = await pubsub.get_sharded_message(timeout=wait_s)
    else:
        msg = await pubsub.get_message(timeout=wait_s)
    return dict(msg) if msg is not None else None


async def publish(redis: aioredis.Redis, channel: str, data: bytes) -> int:
    """``PUBLISH`` (``SPUBLISH`` on a Cluster) ``data``; returns how many subscribers got it."""
    if is_cluster(redis):
        return int(await redis.spublish(channel, data))
    return int(await redis.publish(channel, data))


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's outcome: an HTTP status, a human-readable detail and optional data."""

    status: int
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> bytes:
        return orjson.dumps({"status": self.status, "detail": self.detail, "data": self.data})

    @classmethod
    def loads(cls, raw: str | bytes) -> Reply:
        obj = orjson.loads(raw)
        return cls(int(obj["status"]), str(obj.get("detail", "")), dict(obj.get("data") or {}))


async def send_command(
    redis: aioredis.Redis,
    keys: Keys,
    instance: str,
    op: str,
    call_sid: str,
    args: dict[str, Any],
    *,
    by: str,
    timeout_s: float,
) -> Reply:
    """Publish one call command to ``instance`` and wait for its reply (see module doc).

    Raises ``StoreError`` when Redis fails.
    """
    request_id = secrets.token_hex(12)
    reply_to = keys.control_reply(request_id)
    command = {
        "id": request_id,
        "op": op,
        "call_sid": call_sid,
        "args": args,
        "reply_to": reply_to,
        "by": by,
    }
    sharded = is_cluster(redis)
    pubsub = redis.pubsub()
    try:
        async with asyncio.timeout(timeout_s):
            await _subscribe(pubsub, sharded, reply_to)
            while True:  # the subscription is confirmed before the command goes out
                msg = await _next_message(pubsub, sharded, timeout_s)
                if msg is not None and msg.get("type") in _SUBSCRIBED:
                    break
            receivers = await publish(redis, keys.control(instance), orjson.dumps(command))
            if receivers == 0:
                return Reply(404, "call is not live (its instance is gone)")
            while True:
                msg = await _next_message(pubsub, sharded, timeout_s)
                if msg is not None and msg.get("type") in _MESSAGE:
                    try:
                        return Reply.loads(msg["data"])
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        return Reply(502, "malformed reply from the instance holding the call")
    except TimeoutError:
        return Reply(504, f"no answer from instance {instance} in time")
    except (RedisError, RedisClusterException) as exc:
        raise_if_cancelling()  # a cancel redis-py turned into an error
        raise StoreError(f"control command failed: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def broadcast(redis: aioredis.Redis, keys: Keys, message: dict[str, Any]) -> int:
    """Publish ``message`` on ``{p}control:{all}``; returns how many instances received it."""
    try:
        return await publish(redis, keys.control("all"), orjson.dumps(message))
    except (RedisError, RedisClusterException) as exc:
        raise StoreError(f"broadcast failed: {exc}") from exc


async def run_call_command(
    services: Services, op: str, call_sid: str, args: dict[str, Any]
) -> Reply:
    """Perform ``op`` on a call bridged by this process (never raises).

    A transfer goes only to a named target of the call's flow or a number on the
    allowed list, never to a premium-rate, unlisted international or do-not-call number.
    """
    if op == "transfer":
        refused = await _transfer_refused(services, call_sid, args)
        if refused is not None:
            return refused
    bridge = services.live.calls.get(call_sid)
    session = bridge.session if bridge is not None else None
    if bridge is None or session is None:
        return Reply(404, "call is not live")
    state = session.machine.state
    if state is CallState.ended or (op != "hangup" and state is CallState.ending):
        return Reply(409, f"call is {state.value}")
    reason = str(args.get("reason") or "operator")[:200]
    try:
        if op == "hangup":
            bridge.hangup(reason)
            return Reply(200, "hanging up")
        if op == "transfer":
            target = args.get("target")
            if target:
                number = session.flow.transfer_targets.get(str(target))
                if number is None:
                    names = sorted(session.flow.transfer_targets)
                    return Reply(
                        422,
                        f"flow {session.flow.name!r} has no transfer target {target!r}: {names}",
                    )
            else:
                try:
                    number = normalize(str(args.get("to") or ""))
                except ValueError as exc:
                    return Reply(422, str(exc))
            why = services.transfers.refusal(number, session.flow.transfer_targets.values())
            if why is not None:
                return Reply(422, f"transfer to {mask(number)} refused: {why}")
            mode = str(args.get("mode") or "") or None
            if mode not in (None, "cold", "warm"):
                return Reply(422, f"transfer mode must be cold or warm, not {mode!r}")
            bridge.transfer(number, reason, mode)
            mode = mode or session.flow.transfer.mode
            return Reply(
                200,
                f"transferring to {mask(number)} ({mode})",
                {"to_masked": mask(number), "mode": mode},
            )
        if op == "say":
            text = str(args.get("text") or "").strip()
            if not text or len(text) > MAX_SAY_CHARS:
                return Reply(422, f"text must be 1-{MAX_SAY_CHARS} characters")
            bridge.say(text)
            return Reply(200, "saying it")
    except ToolRefused as exc:
        return Reply(409, str(exc))
    except (AssertionError, RuntimeError) as exc:  # not bridged yet, or its tasks are closing
        return Reply(409, f"call cannot take commands now: {exc!r}")
    return Reply(422, f"unknown command {op!r}")


async def _transfer_refused(
    services: Services, call_sid: str, args: dict[str, Any]
) -> Reply | None:
    """The do-not-call answer for a transfer's destination (422), or None. Looked up
    before the call is touched; the REST client checks again right before dialling."""
    bridge = services.live.calls.get(call_sid)
    session = bridge.session if bridge is not None else None
    if session is None:
        return None
    target = args.get("target")
    if target:
        number = session.flow.transfer_targets.get(str(target))
    else:
        try:
            number = normalize(str(args.get("to") or ""))
        except ValueError:
            return None  # answered below
    if number is None:
        return None
    try:
        why = await services.calls_api.refusal(number)
    except Exception as exc:  # a guard that fails refuses: never dial unchecked
        why = f"cannot be checked ({exc})"
    if why is None:
        return None
    log.warning("operator transfer to %s refused: %s", mask(number), why)
    return Reply(422, f"transfer to {mask(number)} refused: {why}")


class ControlListener(BackgroundLoop):
    """Subscribes to this instance's command channel and to broadcasts; runs what arrives.

    ``on_reload`` is awaited for a ``reload_flows`` broadcast from another instance.
    Reconnects after Redis failures (1 s pause).
    """

    task_name = "control-listener"

    def __init__(
        self,
        services: Services,
        instance: str,
        on_reload: Callable[[], Awaitable[Any]],
    ) -> None:
        self.services = services
        self.instance = instance
        self.on_reload = on_reload
        self.ready = asyncio.Event()

    async def _run(self) -> None:
        keys = self.services.keys
        sharded = is_cluster(self.services.redis)
        while True:
            pubsub = self.services.redis.pubsub()
            try:
                await _subscribe(pubsub, sharded, keys.control(self.instance), keys.control("all"))
                self.ready.set()
                while True:
                    msg = await _next_message(pubsub, sharded, 1.0)
                    if msg is not None and msg.get("type") in _MESSAGE:
                        await self._on_message(msg["data"])
            except (RedisError, RedisClusterException, OSError) as exc:
                raise_if_cancelling()  # a cancel redis-py turned into an error
                self.ready.clear()
                log.warning("control listener: Redis failed (%s); resubscribing", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _on_message(self, data: str | bytes) -> None:
        try:
            command = orjson.loads(data)
            op = str(command["op"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("control: malformed command ignored")
            return
        if op == "reload_flows":
            if command.get("origin") != self.instance:
                try:
                    await self.on_reload()
                except Exception:
                    log.exception("control: flow reload failed")
            return
        if op not in CALL_OPS:
            log.warning("control: unknown command %r ignored", op)
            return
        call_sid = str(command.get("call_sid", ""))
        args = command.get("args") if isinstance(command.get("args"), dict) else {}
        token = call_sid_var.set(call_sid or None)
        try:
            reply = await run_call_command(self.services, op, call_sid, args)
            metrics.CONTROL_COMMANDS.labels(op, str(reply.status)).inc()
            log.info(
                "operator %s by %s: %d %s",
                op,
                str(command.get("by", "?"))[:100],
                reply.status,
                reply.detail,
            )
        finally:
            call_sid_var.reset(token)
        reply_to = command.get("reply_to")
        if isinstance(reply_to, str) and reply_to.startswith(
            self.services.keys.control_reply_prefix
        ):
            await publish(self.services.redis, reply_to, reply.dumps())
