"""``/metrics`` after a live simulated call: calls, turn latency, tools, control, dialer names."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.admin.conftest import AdminStack
from tests.e2e.conftest import order_status_call
from tests.helpers import wait_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in metrics.items() if n == name)


async def test_metrics_after_a_call(admin: AdminStack) -> None:
    before = samples((await admin.http.get("/metrics")).text)
    script = order_status_call()
    result = await admin.stack.sim.place_inbound_call(script)
    assert result.ended_by == "hangup"
    responses: list[httpx.Response] = []

    async def call_counted() -> bool:  # the bridge finishes after the carrier hangs up
        responses[:] = [await admin.http.get("/metrics")]
        now = samples(responses[-1].text)
        active = ("switchboard_active_calls", ())
        ended = total(now, "switchboard_calls_total") > total(before, "switchboard_calls_total")
        return ended and now[active] == before[active]

    await wait_until(call_counted, what="the call ended and counted in /metrics")
    r = responses[-1]
    assert r.headers["content-type"].startswith("text/plain")
    after = samples(r.text)

    def grew(name: str, labels: dict[str, str] | None = None) -> float:
        key = (name, tuple(sorted((labels or {}).items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("switchboard_calls_total", {"direction": "inbound", "outcome": "completed"}) == 1
    assert grew("switchboard_turn_latency_seconds_count") == 2
    assert grew("switchboard_tool_calls_total", {"tool": "get_order_status", "result": "ok"}) == 1
    assert grew("switchboard_tool_duration_seconds_count", {"tool": "end_call"}) == 1
    assert after[("switchboard_active_calls", ())] == before[("switchboard_active_calls", ())]
    names = {n for n, _ in after}
    for name in (
        "switchboard_barge_ins_total",
        "switchboard_realtime_errors_total",
        "switchboard_realtime_disconnects_total",
    ):
        assert name in names, name
    text = r.text
    for family in (
        "switchboard_dialer_attempts_total",
        "switchboard_dialer_cps",
        "switchboard_admin_auth_failures_total",
        "switchboard_control_commands_total",
    ):
        assert f"# TYPE {family} " in text, family
    assert total(after, "switchboard_turn_latency_seconds_sum") > 0
