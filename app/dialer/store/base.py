"""What every part of the campaign store shares: the Redis client, the key scheme, the
Lua scripts and the mapping of Redis failures to ``StoreError``.

The scripts live next to this module as ``lua/<name>.lua``, each opening with a comment
that lists its ``KEYS`` and ``ARGV``. They are read once, at import, and registered on
each client with redis-py's ``register_script`` (``EVALSHA``, falling back to ``EVAL``).
Every key a script touches is in its ``KEYS`` and is the campaign's (hash tag ``{cid}``),
so each script runs on one node of a Redis Cluster; the account-wide rate key has
scripts of its own (``account``, ``give_back``).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from app.errors import StoreError
from app.store.keys import Keys

#: The Lua scripts by name (``lua/<name>.lua``), read at import.
SCRIPTS: dict[str, str] = {
    name: (files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    for name in (
        "claim", "account", "give_back", "dial", "release", "finish_leased", "progress",
        "finish", "drain", "add", "status", "complete",
    )
}  # fmt: skip


class StoreBase:
    """Redis access under ``keys``; ``retention_s``: how long call links are kept."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, retention_s: int = 30 * 86400) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_s = retention_s
        self._claim = redis.register_script(SCRIPTS["claim"])
        self._account = redis.register_script(SCRIPTS["account"])
        self._give_back = redis.register_script(SCRIPTS["give_back"])
        self._dial = redis.register_script(SCRIPTS["dial"])
        self._release = redis.register_script(SCRIPTS["release"])
        self._finish_leased = redis.register_script(SCRIPTS["finish_leased"])
        self._progress = redis.register_script(SCRIPTS["progress"])
        self._finish = redis.register_script(SCRIPTS["finish"])
        self._drain = redis.register_script(SCRIPTS["drain"])
        self._add = redis.register_script(SCRIPTS["add"])
        self._status = redis.register_script(SCRIPTS["status"])
        self._complete = redis.register_script(SCRIPTS["complete"])

    async def _run(self, op: str, awaitable: Any) -> Any:
        """Await ``awaitable``; a Redis failure becomes ``StoreError`` naming ``op`` (a
        script's own error reply, ``ResponseError``, is left to the caller)."""
        try:
            return await awaitable
        except ResponseError:
            raise
        except RedisError as exc:
            raise StoreError(f"{op} failed: {exc}") from exc
