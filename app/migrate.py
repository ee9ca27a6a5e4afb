"""Versioned Redis migrations.

A migration is a module ``migrations/mNNNN_<name>.py`` defining ``VERSION: int`` (equal
to ``NNNN``), ``DESCRIPTION: str`` and ``async def up(redis, keys) -> None``. ``up`` must
be safe to re-run (a crash between ``up`` and recording the version re-runs it).
``migrate()`` applies the pending ones in order under ``{p}schema:lock`` and records
``{p}schema:version`` after each; there are no down migrations.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import ConfigError, StoreError
from app.errors import MigrationLocked as MigrationLocked  # defined in the one tree
from app.store.keys import Keys

log = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "migrations"
_MODULE_NAME = re.compile(r"^m(\d{4})_[a-z0-9_]+$")

#: Deletes the lock only if we still own it (compare-and-delete).
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

UpFn = Callable[[aioredis.Redis, Keys], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration: ``version`` (≥ 1), ``description``, ``up(redis, keys)``, module name."""

    version: int
    description: str
    up: UpFn
    module: str


def _load(module: ModuleType) -> Migration:
    name = module.__name__.rsplit(".", 1)[-1]
    match = _MODULE_NAME.match(name)
    version = getattr(module, "VERSION", None)
    description = getattr(module, "DESCRIPTION", None)
    up = getattr(module, "up", None)
    if match is None or not isinstance(version, int) or version != int(match.group(1)):
        raise ConfigError(f"migration {module.__name__}: VERSION must match its file name")
    if not isinstance(description, str) or not callable(up):
        raise ConfigError(f"migration {module.__name__}: needs DESCRIPTION and async up()")
    return Migration(version, description, up, module.__name__)


def available(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """Every migration module in ``package``, sorted by version.

    Raises ``ConfigError`` for a module whose ``VERSION`` does not match its
    ``mNNNN_`` name, lacks ``DESCRIPTION``/``up``, or duplicates a version.
    """
    pkg = importlib.import_module(package)
    found: list[Migration] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if _MODULE_NAME.match(info.name):
            found.append(_load(importlib.import_module(f"{package}.{info.name}")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or any(v < 1 for v in versions):
        raise ConfigError(f"migration versions must be unique and ≥ 1: {versions}")
    return found


async def current_version(redis: aioredis.Redis, keys: Keys) -> int:
    """The last applied migration (0 when none). Raises ``StoreError`` on a malformed value."""
    try:
        raw = await redis.get(keys.schema_version)
    except RedisError as exc:
        raise StoreError(f"reading {keys.schema_version} failed: {exc}") from exc
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError as exc:
        raise StoreError(f"{keys.schema_version} holds {raw!r}, not an integer") from exc


async def migrate(
    redis: aioredis.Redis,
    keys: Keys,
    target: int | None = None,
    *,
    migrations: Sequence[Migration] | None = None,
    lock_ms: int = 60_000,
) -> list[int]:
    """Apply pending migrations up to ``target`` (default: the newest); return their versions.

    Runs under ``schema:lock`` (``SET NX PX lock_ms``, released afterwards). Records
    ``schema:version`` after each migration, so a failure leaves the earlier ones
    recorded. Idempotent: with nothing pending it returns ``[]``. ``migrations``
    overrides ``available()`` (tests).

    Raises ``MigrationLocked`` when another run holds the lock, ``StoreError`` when
    ``target`` is below the current version (no downgrades) or unknown, or Redis
    fails; exceptions from a migration's ``up`` propagate unchanged.
    """
    plan = list(available() if migrations is None else migrations)
    newest = plan[-1].version if plan else 0
    if target is not None and target != 0 and target not in {m.version for m in plan}:
        raise StoreError(f"no migration with version {target} (newest is {newest})")
    goal = newest if target is None else target

    owner = secrets.token_hex(16)
    try:
        acquired = await redis.set(keys.schema_lock, owner, nx=True, px=lock_ms)
    except RedisError as exc:
        raise StoreError(f"taking {keys.schema_lock} failed: {exc}") from exc
    if not acquired:
        raise MigrationLocked(
            f"another migration is running: {keys.schema_lock} is held "
            f"(it expires within {lock_ms} ms if its owner died)"
        )
    applied: list[int] = []
    try:
        current = await current_version(redis, keys)
        if goal < current:
            raise StoreError(f"schema is at version {current}; cannot migrate down to {goal}")
        for m in plan:
            if current < m.version <= goal:
                log.info("applying migration %04d: %s", m.version, m.description)
                await m.up(redis, keys)
                try:
                    await redis.set(keys.schema_version, m.version)
                except RedisError as exc:
                    raise StoreError(f"recording schema version failed: {exc}") from exc
                applied.append(m.version)
    finally:
        try:
            await redis.eval(_RELEASE_LOCK, 1, keys.schema_lock, owner)
        except RedisError:
            log.exception("could not release %s; it expires by itself", keys.schema_lock)
    return applied
