"""The Redis client factory used by the service: one Redis, Sentinel or Cluster.

``SWITCHBOARD_REDIS_URL`` chooses (every form takes ``user:password@``):

- ``redis://host:6379/0``, ``rediss://…`` (TLS), ``unix:///path.sock``: one Redis.
- ``redis+sentinel://host:26379[,host:26379…]/SERVICE[/db]`` (``rediss+sentinel://``
  for TLS to the data nodes): the master Sentinel names for ``SERVICE``, found again
  after a failover (redis-py's ``Sentinel.master_for``). The password is the data
  nodes'; ``?sentinel_password=…`` (and ``sentinel_username``) authenticate to the
  Sentinels.
- ``redis+cluster://host:6379[,host:6379…]`` (``rediss+cluster://``): a Redis Cluster
  (redis-py's ``RedisCluster``; the hosts are startup nodes, the rest is discovered).

Every key Switchboard writes is hash-tagged (``app.store.keys``) so that what one
operation touches shares a slot; ``transact`` runs groups of commands that belong to
different slots as one ``MULTI`` on a single Redis and one ``MULTI`` per group on a
Cluster. Live control uses sharded pub/sub on a Cluster (``app.admin.control``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a Redis URL names. ``kind``: ``single``, ``sentinel`` or ``cluster``;
    ``hosts``: ``(host, port)`` pairs (Sentinels or startup nodes; empty for ``single``,
    whose URL goes to redis-py as is); ``service``: the Sentinel master name."""

    kind: str
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """The target without credentials, for logs and ``switchboard doctor``."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        if self.kind == "sentinel":
            return f"Sentinel {hosts}, master {self.service!r}, db {self.db}"
        if self.kind == "cluster":
            return f"Cluster via {hosts}"
        parts = urlsplit(self.url)
        where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
        return f"Redis {where}{'' if parts.scheme == 'unix' else parts.path or '/0'}"


def parse_redis_url(url: str) -> RedisTarget:
    """Parse ``url`` (see the module doc). Raises ``ValueError`` for an unknown scheme,
    a missing host or Sentinel service name, or a bad port or db."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        if scheme != "unix" and not parts.hostname:
            raise ValueError(f"no host in Redis URL {_redact(url)!r}")
        return RedisTarget("single", url, tls=scheme == "rediss")
    if scheme not in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        raise ValueError(
            f"unknown Redis URL scheme {parts.scheme!r}: use redis://, rediss://, unix://, "
            "redis+sentinel:// or redis+cluster://"
        )
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts: list[tuple[str, int]] = []
    default_port = 26379 if scheme in SENTINEL_SCHEMES else 6379
    for item in filter(None, hostlist.split(",")):
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or str(default_port)
        else:
            host, sep, port = item.partition(":")
            port = port if sep else str(default_port)
        if not host or not port.isdigit():
            raise ValueError(f"bad host {item!r} in Redis URL {_redact(url)!r}")
        hosts.append((host, int(port)))
    if not hosts:
        raise ValueError(f"no hosts in Redis URL {_redact(url)!r}")
    path = [p for p in parts.path.split("/") if p]
    service, db = "", 0
    if scheme in SENTINEL_SCHEMES:
        if not path:
            raise ValueError(f"no Sentinel service name in {_redact(url)!r} (…/MASTER_NAME/0)")
        service = unquote(path[0])
        path = path[1:]
    if path:
        if not path[0].isdigit():
            raise ValueError(f"bad db {path[0]!r} in Redis URL {_redact(url)!r}")
        db = int(path[0])
    if scheme in CLUSTER_SCHEMES and db:
        raise ValueError("a Redis Cluster has only db 0")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return RedisTarget(
        kind="sentinel" if scheme in SENTINEL_SCHEMES else "cluster",
        url=url,
        hosts=tuple(hosts),
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=scheme.startswith("rediss"),
        options=options,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return url.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2], 1)


def create_redis(
    url: str,
    *,
    socket_timeout_s: float = 2.0,
    connect_timeout_s: float = 2.0,
    health_check_interval_s: int = 30,
    max_connections: int = 64,
    retries: int = 2,
) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (one Redis, Sentinel or Cluster: module doc).

    Replies are decoded to ``str`` (``decode_responses=True``). Reads/writes give up
    after ``socket_timeout_s`` and connects after ``connect_timeout_s`` (raising
    ``redis.exceptions.TimeoutError``) so a stuck Redis never hangs a call; idle
    connections are pinged every ``health_check_interval_s``. No I/O happens here.
    Raises ``ValueError`` for a malformed URL.

    At most ``max_connections`` are open (per node on a Cluster); past that a command
    waits (up to ``socket_timeout_s``) for a free one instead of failing at once with
    "Too many connections": hundreds of calls ending together each write their record.

    A Cluster client is a ``redis.asyncio.RedisCluster``, returned as the ``Redis`` type
    the stores are written against: it takes the same commands, pipelines (a
    transaction's keys must share a slot: ``transact``), scripts (all ``KEYS`` in one
    slot) and ``pubsub()`` (``ClusterPubSub``); ``is_cluster`` tells them apart.
    """
    target = parse_redis_url(url)
    retry = Retry(ExponentialWithJitterBackoff(cap=0.25, base=0.02), retries)
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": connect_timeout_s,
        "socket_keepalive": True,
        "health_check_interval": health_check_interval_s,
        "retry": retry,
    }
    if target.kind == "single":
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=socket_timeout_s, **common
        )
        return aioredis.Redis.from_pool(pool)
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "sentinel":
        sentinel_auth: dict[str, Any] = {
            "username": target.options.get("sentinel_username"),
            "password": target.options.get("sentinel_password"),
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": connect_timeout_s,
        }
        sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_auth)  # type: ignore[no-untyped-call]
        client: aioredis.Redis = sentinel.master_for(
            target.service,
            db=target.db,
            ssl=target.tls,
            max_connections=max_connections,
            **auth,
            **common,
        )
        return client
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        max_connections=max_connections,
        ssl=target.tls,
        **auth,
        **common,
    )
    return cast(aioredis.Redis, cluster)


def is_cluster(redis: object) -> bool:
    """True for a Redis Cluster client (``create_redis`` with ``redis+cluster://``)."""
    return isinstance(redis, RedisCluster)


Group = Callable[[Any], object]


async def transact(redis: aioredis.Redis, groups: Sequence[Group]) -> list[list[Any]]:
    """Run each group (a function queueing commands on a pipeline) atomically; return
    each group's replies.

    A group's keys must share a hash slot. On one Redis (or Sentinel) every group goes
    into one ``MULTI``/``EXEC``; on a Cluster each group is its own ``MULTI`` on its
    slot's node, in order (a failure part-way leaves the earlier groups applied, so
    order groups so that the data comes before what indexes it). Raises
    ``redis.exceptions.RedisError`` as the pipeline does.
    """
    if is_cluster(redis):
        out = []
        for group in groups:
            async with redis.pipeline(transaction=True) as pipe:
                group(pipe)
                out.append(list(await pipe.execute()) if len(pipe) else [])
        return out
    async with redis.pipeline(transaction=True) as pipe:
        sizes = []
        for group in groups:
            before = len(pipe)
            group(pipe)
            sizes.append(len(pipe) - before)
        replies = list(await pipe.execute()) if len(pipe) else []
    out, start = [], 0
    for size in sizes:
        out.append(replies[start : start + size])
        start += size
    return out
