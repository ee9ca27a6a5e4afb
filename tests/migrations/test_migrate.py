"""Migrations against real Redis: apply once, versions recorded, lock honoured."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner, Result

from app.cli import cli
from app.demo import remove_demo, seed_demo
from app.errors import ConfigError, MigrationLocked, StoreError
from app.migrate import Migration, available, current_version, migrate
from app.settings import get_settings
from app.store.keys import Keys
from tests.conftest import REDIS_URL


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    return Keys(redis_prefix)


def test_available_lists_modules_in_order() -> None:
    found = available()
    assert [m.version for m in found][:1] == [1]
    assert found[0].module == "migrations.m0001_retired_demo_seed"
    assert found[0].description
    assert [m.version for m in found] == sorted(m.version for m in found)


async def test_migrate_applies_once(redis_client: aioredis.Redis, keys: Keys) -> None:
    assert await current_version(redis_client, keys) == 0
    applied = await migrate(redis_client, keys)
    newest = available()[-1].version
    assert applied == [m.version for m in available()]
    assert await current_version(redis_client, keys) == newest
    assert await migrate(redis_client, keys) == []
    assert await redis_client.exists(keys.schema_lock) == 0
    # A deployment gets no demo data from its migrations.
    assert await redis_client.exists(keys.customer("ACME-1001"), keys.order("1042")) == 0
    assert await redis_client.get(keys.orders_seq) is None


async def test_seed_demo_writes_the_demo_crm(redis_client: aioredis.Redis, keys: Keys) -> None:
    await seed_demo(redis_client, keys)
    assert await redis_client.hget(keys.customer("ACME-1001"), "name") == "Dana Whitaker"
    assert await redis_client.get(keys.customer_phone("+15555550123")) == "ACME-1001"
    assert await redis_client.hget(keys.order("1044"), "quantity") == "2"
    assert await redis_client.get(keys.orders_seq) == "2000"


async def test_seed_rerun_keeps_counter(redis_client: aioredis.Redis, keys: Keys) -> None:
    await seed_demo(redis_client, keys)
    await redis_client.set(keys.orders_seq, 2042)
    await redis_client.hset(keys.order("1042"), "status", "delivered")
    await seed_demo(redis_client, keys)
    assert await redis_client.get(keys.orders_seq) == "2042"
    assert await redis_client.hget(keys.order("1042"), "status") == "shipped"


async def test_remove_demo_deletes_only_the_demo(redis_client: aioredis.Redis, keys: Keys) -> None:
    await seed_demo(redis_client, keys)
    await redis_client.hset(keys.order("2001"), mapping={"order_id": "2001", "item": "cup"})
    # The second demo number now belongs to a real customer: its index entry stays.
    await redis_client.set(keys.customer_phone("+15555550188"), "REAL-7")
    assert await remove_demo(redis_client, keys) == 6  # 2 customers, 3 orders, 1 phone
    assert await redis_client.exists(keys.customer("ACME-1001"), keys.order("1043")) == 0
    assert await redis_client.exists(keys.customer_phone("+15555550123")) == 0
    assert await redis_client.get(keys.customer_phone("+15555550188")) == "REAL-7"
    assert await redis_client.hget(keys.order("2001"), "item") == "cup"
    assert await redis_client.get(keys.orders_seq) == "2000"
    assert await remove_demo(redis_client, keys) == 0


async def test_migration_1_is_a_no_op(redis_client: aioredis.Redis, keys: Keys) -> None:
    await available()[0].up(redis_client, keys)
    assert [k async for k in redis_client.scan_iter(match=keys.prefix + "*")] == []


async def _seed_demo_cli(
    prefix: str, *args: str, env: str = "dev", extra: dict[str, str] | None = None
) -> Result:
    """``switchboard seed-demo ARGS`` against the test Redis under ``prefix``."""
    environ = {
        "SWITCHBOARD_ENV": env,
        "SWITCHBOARD_REDIS_URL": REDIS_URL,
        "SWITCHBOARD_REDIS_PREFIX": prefix,
        **(extra or {}),
    }
    get_settings.cache_clear()
    try:
        return await asyncio.to_thread(CliRunner().invoke, cli, ["seed-demo", *args], env=environ)
    finally:
        get_settings.cache_clear()


async def test_seed_demo_command(redis_client: aioredis.Redis, keys: Keys) -> None:
    result = await _seed_demo_cli(keys.prefix)
    assert result.exit_code == 0, result.output
    assert "2 customers" in result.output and "3 orders" in result.output
    assert await redis_client.hget(keys.order("1042"), "item") == "espresso machine"
    result = await _seed_demo_cli(keys.prefix, "--remove")
    assert result.exit_code == 0, result.output
    assert "removed" in result.output
    assert await redis_client.exists(keys.order("1042")) == 0


PRODUCTION = {
    "SWITCHBOARD_PUBLIC_BASE_URL": "https://voice.example.com",
    "SWITCHBOARD_TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "SWITCHBOARD_TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
    "SWITCHBOARD_REALTIME_API_KEY": "sk-secret-value-" + "x" * 32,
}


async def test_seed_demo_is_refused_in_production(redis_client: aioredis.Redis, keys: Keys) -> None:
    result = await _seed_demo_cli(keys.prefix, env="production", extra=PRODUCTION)
    assert result.exit_code == 2
    assert "refusing" in result.output and "--force" in result.output
    assert await redis_client.exists(keys.order("1042")) == 0
    result = await _seed_demo_cli(keys.prefix, "--force", env="production", extra=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert await redis_client.exists(keys.order("1042")) == 1


def _recording(log: list[int], version: int) -> Migration:
    async def up(redis: aioredis.Redis, keys: Keys) -> None:
        log.append(version)
        await redis.set(keys.prefix + f"m{version}", "1")

    return Migration(version, f"test {version}", up, f"test.m{version:04d}")


async def test_target_and_order(redis_client: aioredis.Redis, keys: Keys) -> None:
    ran: list[int] = []
    plan = [_recording(ran, v) for v in (1, 2, 3)]
    assert await migrate(redis_client, keys, 2, migrations=plan) == [1, 2]
    assert await current_version(redis_client, keys) == 2
    assert await migrate(redis_client, keys, migrations=plan) == [3]
    assert ran == [1, 2, 3]
    with pytest.raises(StoreError, match="cannot migrate down"):
        await migrate(redis_client, keys, 1, migrations=plan)
    with pytest.raises(StoreError, match="no migration with version 9"):
        await migrate(redis_client, keys, 9, migrations=plan)


async def test_failure_records_earlier_versions(redis_client: aioredis.Redis, keys: Keys) -> None:
    ran: list[int] = []

    async def broken(redis: aioredis.Redis, keys: Keys) -> None:
        raise RuntimeError("bad migration")

    plan = [_recording(ran, 1), Migration(2, "broken", broken, "test.m0002")]
    with pytest.raises(RuntimeError, match="bad migration"):
        await migrate(redis_client, keys, migrations=plan)
    assert await current_version(redis_client, keys) == 1
    assert await redis_client.exists(keys.schema_lock) == 0


async def test_lock_refuses_concurrent_run(redis_client: aioredis.Redis, keys: Keys) -> None:
    await redis_client.set(keys.schema_lock, "someone-else", px=10_000)
    with pytest.raises(MigrationLocked, match="schema:lock"):
        await migrate(redis_client, keys)
    assert await current_version(redis_client, keys) == 0
    # The other owner's lock is untouched.
    assert await redis_client.get(keys.schema_lock) == "someone-else"


async def test_lock_held_during_run(redis_client: aioredis.Redis, keys: Keys) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(redis: aioredis.Redis, keys: Keys) -> None:
        entered.set()
        await release.wait()

    plan = [Migration(1, "slow", slow, "test.m0001")]
    first = asyncio.create_task(migrate(redis_client, keys, migrations=plan))
    await entered.wait()
    with pytest.raises(MigrationLocked):
        await migrate(redis_client, keys, migrations=plan)
    release.set()
    assert await first == [1]
    assert await redis_client.exists(keys.schema_lock) == 0


async def test_malformed_version(redis_client: aioredis.Redis, keys: Keys) -> None:
    await redis_client.set(keys.schema_version, "abc")
    with pytest.raises(StoreError, match="not an integer"):
        await current_version(redis_client, keys)


def test_available_rejects_mismatched_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    root = tmp_path
    pkg = root / "fake_migrations_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "m0002_wrong.py").write_text(
        "VERSION = 3\nDESCRIPTION = 'x'\nasync def up(redis, keys):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(root))
    with pytest.raises(ConfigError, match="VERSION must match"):
        available("fake_migrations_pkg")
