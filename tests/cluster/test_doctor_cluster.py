"""``switchboard doctor``'s Redis check on the real Redis Cluster: every master answers,
and the cluster's missing persistence is reported per node."""

from __future__ import annotations

from app.doctor import Status, check_redis
from app.settings import Settings
from tests.cluster.conftest import Cluster


async def test_every_master_is_checked(redis_cluster: Cluster, redis_prefix: str) -> None:
    settings = Settings(env="dev", redis_url=redis_cluster.url, redis_prefix=redis_prefix)
    findings = await check_redis(settings)
    assert findings[0].status is Status.ok and "3 node(s)" in findings[0].detail
    persistence = [f for f in findings if "persistence" in f.detail]
    assert persistence[0].status is Status.warn  # the test cluster runs without AOF or RDB
    assert all(f"127.0.0.1:{p}" in persistence[0].detail for p in redis_cluster.ports)
