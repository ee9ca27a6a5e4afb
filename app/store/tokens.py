"""One-time media stream tokens: issued with the TwiML, redeemed on the WebSocket."""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import StoreError
from app.store.keys import Keys


class StreamTokens:
    """Issue and redeem one-time tokens binding a media stream to its call SID.

    Key ``{p}token:{token}`` → call SID, with a TTL. Both methods raise ``StoreError``
    when Redis fails.
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def issue(self, call_sid: str, ttl_s: int) -> str:
        """A new URL-safe token (32 chars, 192 bits) for ``call_sid``, valid ``ttl_s`` seconds."""
        if ttl_s < 1:
            raise ValueError("ttl_s must be at least 1 second")
        try:
            for _ in range(3):
                token = secrets.token_urlsafe(24)
                if await self.redis.set(self.keys.token(token), call_sid, nx=True, ex=ttl_s):
                    return token
        except RedisError as exc:
            raise StoreError(f"issuing a stream token failed: {exc}") from exc
        raise StoreError("could not issue a unique stream token")  # pragma: no cover

    async def redeem(self, token: str, call_sid: str) -> bool:
        """Consume ``token``: True only if it exists, is unexpired and maps to ``call_sid``.

        The token is deleted whatever the answer (``GETDEL``), so a second redeem is
        False. Empty or oversized tokens are False without touching Redis.
        """
        if not token or len(token) > 128:
            return False
        try:
            owner = await self.redis.getdel(self.keys.token(token))
        except RedisError as exc:
            raise StoreError(f"redeeming a stream token failed: {exc}") from exc
        return owner is not None and secrets.compare_digest(str(owner).encode(), call_sid.encode())
