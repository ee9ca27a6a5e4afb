"""One-time media stream tokens holding the call's context: issued with the TwiML,
redeemed on the WebSocket.

The voice webhook decides who the call is (flow, numbers, direction, a campaign
contact's variables) and stores that *with the token*; the media stream takes it from
here when it redeems the token, so nothing a client puts in ``start.customParameters``
besides the token itself is believed. One token per ``CallSid``, ever: a repeated
webhook gets the same token back while it is unredeemed and unexpired, and none after.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import StoreError
from app.store.keys import Keys, call_shard

#: Longest token accepted for redemption (characters); issued ones are 32.
MAX_TOKEN_CHARS = 128

#: Issue at most one token per call. KEYS[1] the call's token marker, KEYS[2] the new
#: token's key, KEYS[3] the key of the token the marker held when read just before (or
#: KEYS[2]); all in the call's slot (a token starts with its call's shard tag). ARGV:
#: token, context JSON, token TTL (s), marker TTL (s), the marker as read ("" none).
#: Returns {token, context, fresh (1/0)}; {"", "", 0} when the call's token was already
#: redeemed or has expired; fresh -1: a token collision, or the marker changed since it
#: was read (try again).
_ISSUE_LUA = """
local existing = redis.call('GET', KEYS[1])
if (existing or '') ~= ARGV[5] then return {'', '', -1} end
if existing then
  local ctx = redis.call('GET', KEYS[3])
  if ctx then return {existing, ctx, 0} end
  return {'', '', 0}
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) then
  return {'', '', -1}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
return {ARGV[1], ARGV[2], 1}
"""


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What the server decided about a call at its voice webhook.

    Numbers are E.164 (``from_number`` may be "" for an anonymous caller); ``variables``
    are a campaign contact's template variables (``{{name}}`` in the flow).
    """

    call_sid: str
    flow: str
    direction: str = "inbound"
    from_number: str = ""
    to_number: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    campaign: str = ""
    #: The stream brings the caller back from a warm transfer: its bridge resumes the
    #: conversation from the call's hand-off (``app.store.handoffs``).
    handoff: bool = False

    def dumps(self) -> str:
        data: dict[str, Any] = {
            "call_sid": self.call_sid,
            "flow": self.flow,
            "direction": self.direction,
            "from": self.from_number,
            "to": self.to_number,
            "variables": self.variables,
            "campaign": self.campaign,
        }
        if self.handoff:
            data["handoff"] = True
        return orjson.dumps(data).decode()

    @classmethod
    def loads(cls, raw: str | bytes) -> StreamContext:
        """Raises ``StoreError`` for a malformed record."""
        try:
            data: Any = orjson.loads(raw)
            variables = data.get("variables") or {}
            return cls(
                call_sid=str(data["call_sid"]),
                flow=str(data.get("flow", "")),
                direction=str(data.get("direction", "inbound")),
                from_number=str(data.get("from", "")),
                to_number=str(data.get("to", "")),
                variables={str(k): str(v) for k, v in dict(variables).items()},
                campaign=str(data.get("campaign", "")),
                handoff=bool(data.get("handoff", False)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError("malformed stream token record") from exc


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A call's token and the context stored with it; ``fresh`` is False for a repeat."""

    token: str
    context: StreamContext
    fresh: bool


class StreamTokens:
    """Issue and redeem the one-time token binding a media stream to its call.

    Keys: ``Keys.token(token)`` → the ``StreamContext`` as JSON, TTL ``ttl_s`` (deleted
    on redemption); ``Keys.call_token(call_sid)`` → the token, kept ``marker_ttl_s`` so
    the call never gets a second one. A token starts with its call's shard tag
    (``c12.…``), so both keys are in the call's slot. The context holds the raw numbers
    the tools need (the CRM looks the caller up) for at most the token's lifetime.
    Every method raises ``StoreError`` when Redis fails.
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, marker_ttl_s: int = 86400) -> None:
        if marker_ttl_s < 1:
            raise ValueError("marker_ttl_s must be at least 1 second")
        self.redis = redis
        self.keys = keys
        self.marker_ttl_s = marker_ttl_s
        self._issue = redis.register_script(_ISSUE_LUA)

    async def issue(self, context: StreamContext, ttl_s: int) -> IssuedToken | None:
        """The call's token: a new URL-safe one (its call's shard tag, ``.``, 32 chars:
        192 random bits) valid ``ttl_s``
        seconds, or the one already issued while it is unredeemed and unexpired
        (``fresh=False``, with the context stored the first time). None once the call's
        token was redeemed or expired: the call never gets another."""
        if ttl_s < 1:
            raise ValueError("ttl_s must be at least 1 second")
        marker = self.keys.call_token(context.call_sid)
        payload = context.dumps()
        shard = call_shard(context.call_sid)
        try:
            for _ in range(5):
                token = f"{shard}.{secrets.token_urlsafe(24)}"
                seen = str(await self.redis.get(marker) or "")
                got, ctx, fresh = await self._issue(
                    keys=[marker, self.keys.token(token), self.keys.token(seen or token)],
                    args=[token, payload, ttl_s, max(ttl_s, self.marker_ttl_s), seen],
                )
                if int(fresh) == -1:
                    continue  # a collision (2^-192), or a concurrent issue: again
                if not got:
                    return None
                return IssuedToken(str(got), StreamContext.loads(ctx), bool(int(fresh)))
        except RedisError as exc:
            raise StoreError(f"issuing a stream token failed: {exc}") from exc
        raise StoreError("could not issue a unique stream token")  # pragma: no cover

    async def issue_return(self, context: StreamContext, ttl_s: int) -> str:
        """A new one-time token for a call coming back from a warm transfer (its second
        or later stream). Not the call's one webhook token: only the signed ``<Dial
        action>`` callback, which claims the transfer's outcome once, mints it."""
        if ttl_s < 1:
            raise ValueError("ttl_s must be at least 1 second")
        shard = call_shard(context.call_sid)
        try:
            for _ in range(5):
                token = f"{shard}.{secrets.token_urlsafe(24)}"
                if await self.redis.set(self.keys.token(token), context.dumps(), nx=True, ex=ttl_s):
                    return token
        except RedisError as exc:
            raise StoreError(f"issuing a stream token failed: {exc}") from exc
        raise StoreError("could not issue a unique stream token")  # pragma: no cover

    async def pending(self, call_sid: str) -> IssuedToken | None:
        """The call's token while it is unredeemed and unexpired (``fresh=False``), else
        None (never issued, redeemed or expired)."""
        try:
            token = await self.redis.get(self.keys.call_token(call_sid))
            raw = await self.redis.get(self.keys.token(str(token))) if token else None
        except RedisError as exc:
            raise StoreError(f"reading a stream token failed: {exc}") from exc
        if token is None or raw is None:
            return None
        return IssuedToken(str(token), StreamContext.loads(raw), fresh=False)

    async def redeem(self, token: str, call_sid: str) -> StreamContext | None:
        """Consume ``token``: its ``StreamContext`` only if it exists, is unexpired and
        belongs to ``call_sid``; else None.

        The token is deleted whatever the answer (``GETDEL``), so a second redeem is
        None. Empty or oversized tokens are None without touching Redis.
        """
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            raw = await self.redis.getdel(self.keys.token(token))
        except RedisError as exc:
            raise StoreError(f"redeeming a stream token failed: {exc}") from exc
        if raw is None:
            return None
        context = StreamContext.loads(raw)
        if not secrets.compare_digest(context.call_sid.encode(), call_sid.encode()):
            return None
        return context
