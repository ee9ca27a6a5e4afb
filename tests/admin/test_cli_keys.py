"""``switchboard keys create|list|revoke`` against real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from app.admin.keys import ApiKeys, parse_key
from app.cli import cli
from app.settings import get_settings
from app.store.keys import Keys
from tests.conftest import REDIS_URL


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_prefix: str) -> Iterator[None]:
    monkeypatch.setenv("SWITCHBOARD_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("SWITCHBOARD_REDIS_PREFIX", redis_prefix)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_create_list_revoke(
    env: None, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    runner = CliRunner()

    async def run(*args: str) -> Any:  # the CLI runs its own event loop: give it a thread
        return await asyncio.to_thread(runner.invoke, cli, list(args))

    made = await run("keys", "create", "--name", "night shift", "--scope", "write")
    assert made.exit_code == 0, made.output
    raw = made.stdout.strip().splitlines()[-1]
    parsed = parse_key(raw)
    assert parsed is not None
    key_id = parsed[0]
    keys = ApiKeys(redis_client, Keys(redis_prefix))
    key, reason = await keys.verify(raw)
    assert reason == "ok" and key is not None and key.scope.value == "write"

    listed = await run("keys", "list", "--json")
    (row,) = orjson.loads(listed.stdout)
    assert row["key_id"] == key_id and row["name"] == "night shift"
    assert parsed[1] not in listed.stdout  # the secret is shown once, at creation only

    revoked = await run("keys", "revoke", key_id)
    assert revoked.exit_code == 0 and key_id in revoked.stdout
    assert (await keys.verify(raw))[1] == "revoked"
    assert "revoked" in (await run("keys", "list")).stdout

    assert (await run("keys", "revoke", "000000000000")).exit_code == 1
    bad = await run("keys", "create", "--name", "x", "--scope", "admin")
    assert bad.exit_code == 2
