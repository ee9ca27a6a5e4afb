"""The factory's Cluster client against the real three-master cluster."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.store.redis import is_cluster, transact
from tests.cluster.conftest import Cluster


async def test_the_cluster_has_three_masters_and_the_client_spans_them(
    redis_cluster: Cluster, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    assert is_cluster(redis_client)
    await redis_client.ping()  # the client learns the topology on its first command
    nodes = {n.name for n in redis_client.get_nodes()}  # type: ignore[attr-defined]
    assert len(nodes) == 3
    # Keys spread over the masters; each reads back through the one client.
    names = [f"{redis_prefix}k{i}" for i in range(30)]
    for i, name in enumerate(names):
        await redis_client.set(name, i)
    owners = {redis_client.get_node_from_key(n).name for n in names}  # type: ignore[attr-defined]
    assert len(owners) == 3
    assert [int(await redis_client.get(n)) for n in names] == list(range(30))


async def test_transact_runs_each_slot_group_as_its_own_multi(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    a, b = f"{redis_prefix}{{a}}:x", f"{redis_prefix}{{b}}:y"
    replies = await transact(
        redis_client,
        [lambda p: (p.set(a, 1), p.incr(a)), lambda p: p.set(b, "z")],
    )
    assert replies == [[True, 2], [True]]
    assert (await redis_client.get(a), await redis_client.get(b)) == ("2", "z")
