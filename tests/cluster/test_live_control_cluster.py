"""Cross-instance live control on the real Redis Cluster: two servers share the cluster;
a call bridged by A is listed by B (the sharded live registry) and transferred, then
another hung up, from B through sharded pub/sub (SPUBLISH/SSUBSCRIBE)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.phone import mask
from app.store.redis import is_cluster
from switchboard_sim.summary import read_call
from tests.admin.conftest import AdminFactory, AdminStack, long_call, wait_live
from tests.cluster.conftest import Cluster


async def test_commands_cross_instances_over_sharded_pubsub(
    make_admin: AdminFactory, redis_cluster: Cluster
) -> None:
    a: AdminStack = await make_admin(redis_url=redis_cluster.url)
    b: AdminStack = await make_admin(redis_url=redis_cluster.url)
    assert is_cluster(a.stack.services.redis) and is_cluster(b.stack.services.redis)

    call = asyncio.create_task(a.stack.sim.place_inbound_call(long_call()))
    live = await wait_live(b)
    sid = live["call_sid"]
    assert sid in a.stack.services.live.calls and not b.stack.services.live.calls
    r = await b.http.post(f"/admin/calls/{sid}/transfer", headers=b.write, json={"target": "human"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["instance"] == live["instance"]
    assert body["data"]["to_masked"] == mask("+15550109999")
    result = await asyncio.wait_for(call, 25)
    assert result.ended_by == "transfer"
    stored = await read_call(a.stack.store, sid, wait_s=3.0)
    assert mask("+15550109999") in [r["target"] for r in stored["routing"]]

    call = asyncio.create_task(a.stack.sim.place_inbound_call(long_call()))
    live = await wait_live(b)
    r = await b.http.post(
        f"/admin/calls/{live['call_sid']}/hangup", headers=b.write, json={"reason": "cluster"}
    )
    assert r.status_code == 200, r.text
    result = await asyncio.wait_for(call, 20)
    assert result.ended_by == "hangup"
    # The listing (every shard merged) has both calls, newest first.
    listed = (await b.http.get("/admin/calls", headers=b.read)).json()["items"]
    assert [c["call_sid"] for c in listed] == [live["call_sid"], sid]
    # Gone from the registry at once; a command on it now is 404 (nobody holds it).
    r = await b.http.post(f"/admin/calls/{sid}/hangup", headers=b.write)
    assert r.status_code == 404
