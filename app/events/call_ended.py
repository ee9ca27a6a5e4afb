"""The consumer side of ``call.ended``, shared by the post-call workers (analysis, search):
which entries concern them, and waiting until the call's record is complete."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from app.errors import StoreError
from app.events.bus import Event
from app.events.consumer import StreamConsumer
from app.store.calls import CallStore

log = logging.getLogger(__name__)


async def ended_call_sid(
    consumer: StreamConsumer, entry_id: str, fields: dict[str, str], worker: str
) -> str | None:
    """The ``CallSid`` of entry ``entry_id`` when it is a ``call.ended`` event of a call
    that had a media stream (something was said); otherwise None, with the entry
    acknowledged (another type, a call without a stream, or a malformed event: logged as
    ``worker``'s). Raises ``StoreError`` (the ack failed; the entry stays pending)."""
    if fields.get("type") != "call.ended":
        await consumer.ack(entry_id)
        return None
    try:
        event = Event.from_fields(entry_id, fields)
    except ValueError as exc:
        log.error("%s: skipping %s", worker, exc)
        await consumer.ack(entry_id)
        return None
    if event.data.get("outcome") == "no_stream":  # no media stream: nothing was said
        await consumer.ack(entry_id)
        return None
    return str(event.data.get("call_sid", ""))


async def until_ended(store: CallStore, call_sid: str, *, max_wait_s: float, poll_s: float) -> None:
    """Return once ``call_sid``'s record says ``ended`` or the call is live nowhere (its
    bridge's last writes are in), looking every ``poll_s``, at most ``max_wait_s`` (s).
    Raises ``StoreError`` (Redis unreachable)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    while loop.time() < deadline:
        record = await store.get_call(call_sid)
        if record is None or record.get("status") == "ended":
            return
        try:
            if not await store.redis.exists(store.keys.live_call(call_sid)):
                return
        except RedisError as exc:
            raise StoreError(f"live-call check failed: {exc}") from exc
        await asyncio.sleep(poll_s)
