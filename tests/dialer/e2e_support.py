"""Shared pieces of the campaign end-to-end tests (tests/e2e/test_campaign*.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime, time
from typing import Any

from app.dialer.clock import FakeClock
from app.dialer.models import CallingWindow
from app.dialer.runner import Dialer
from app.dialer.service import Campaigns
from switchboard_engine import Scenario
from switchboard_engine.scenario import ScriptedFunctionCall, ScriptedTurn
from switchboard_sim.calls import CallScript
from switchboard_sim.outbound import Callee

#: Monday 2025-03-03 15:00 UTC: 10:00 New York, 15:00 London, 07:00 Los Angeles,
#: 00:00 Tuesday Tokyo, 02:00 Tuesday Sydney.
T0 = int(datetime.fromisoformat("2025-03-03T15:00:00+00:00").timestamp() * 1000)
WINDOW = CallingWindow(start=time(9), end=time(17), days=["mon", "tue", "wed", "thu", "fri"])
FROM = "+15550100000"

#: The local engine's side of a reminder call: keypad answers → outcome tools. Audio
#: turns (a voicemail greeting) get harmless replies.
REMINDER_SCENARIO = Scenario(
    name="reminder",
    turns=[
        ScriptedTurn(transcript="Hello?", say="Hello, this is Acme Health."),
        ScriptedTurn(transcript="Hello, hello?", say="Hello, this is Acme Health."),
        ScriptedTurn(
            transcript="The caller entered 1 on the keypad.",
            say="Wonderful.",
            function_call=ScriptedFunctionCall(
                name="record_outcome", arguments={"outcome": "confirmed"}
            ),
        ),
        ScriptedTurn(
            transcript="The caller entered 2 on the keypad.",
            say="Understood.",
            function_call=ScriptedFunctionCall(
                name="record_outcome", arguments={"outcome": "cancelled"}
            ),
        ),
        ScriptedTurn(
            transcript="The caller entered 3 on the keypad.",
            function_call=ScriptedFunctionCall(
                name="opt_out", arguments={"reason": "pressed 3: stop calling"}
            ),
        ),
    ],
    after_tool={
        "record_outcome": "Thank you. Goodbye.",
        "opt_out": "Sorry to bother you. Goodbye.",
    },
)


def keypad_person(digit: str, ring_ms: int = 30) -> Callee:
    """A person who answers, presses ``digit`` and ``#`` and, once the agent has spoken,
    hangs up after it has been quiet for 3 s of call time (0.3 s: the call timeline runs
    at 10x speed; no audio is sent between utterances)."""
    return Callee(
        "person",
        ring_ms=ring_ms,
        script=CallScript(
            # Pressed while the greeting plays (0.6 s real): keys pressed before the
            # bridge's Realtime leg is connected are dropped by the bridge.
            dtmf=[(6000, digit), (6040, "#")],
            first_wait_ms=50_000,  # waits up to 5 s (real) for the agent's first words
            realtime_pace=False,
            frame_interval_ms=2,
            hangup_after_ms=3000,
            max_duration_s=60,
        ),
    )


def voicemail(ring_ms: int = 30) -> Callee:
    """A voicemail box: greeting and beep (sent at once), then records."""
    return Callee("voicemail", ring_ms=ring_ms)


async def drive(
    campaigns: Campaigns,
    dialer: Dialer,
    clock: FakeClock,
    cid: str,
    *,
    small_step_ms: int = 2000,
    settle_timeout_s: float = 60.0,
    max_passes: int = 5000,
) -> list[int]:
    """Run a campaign to completion on a fake clock; returns the instants visited.

    Fake time moves only when the dialer is blocked: by at most ``small_step_ms`` (a
    call slot) while calls are in flight and the cap leaves room for more, otherwise to
    the dialer's next wake-up once every call in flight has finished (real time passes
    meanwhile, fake time does not).
    """
    visited: list[int] = []
    spec = (await campaigns.get(cid)).spec
    for _ in range(max_passes):
        wake = await dialer.step()
        await dialer.wait_dials(30)
        stats = await campaigns.stats(cid)
        if stats["status"] == "completed":
            return visited
        now = clock.now_ms()
        in_flight = stats["in_progress"]
        room = in_flight < spec.max_concurrent
        if in_flight and room and wake is not None and wake - now <= small_step_ms:
            clock.set(max(now, wake))
            visited.append(clock.now_ms())
            continue
        if in_flight:
            await _until_fewer_in_flight(campaigns, cid, in_flight, settle_timeout_s)
            continue
        if wake is None:
            if stats["pending"] == 0:
                continue  # the last call finished after this pass: the next one completes
            raise AssertionError(f"campaign stuck: {stats}")
        clock.set(max(now, wake))
        visited.append(clock.now_ms())
    raise AssertionError("campaign did not finish")


async def _until_fewer_in_flight(
    campaigns: Campaigns, cid: str, count: int, timeout_s: float
) -> None:
    async with asyncio.timeout(timeout_s):
        for _ in iter(int, 1):  # until fewer calls are in flight or the timeout cancels us
            if (await campaigns.stats(cid))["in_progress"] < count:
                return
            await asyncio.sleep(0.01)


def contact_rows(groups: list[tuple[str, list[tuple[str, str]]]]) -> list[dict[str, Any]]:
    """JSON contacts from ``(label, [(phone, tz), ...])`` groups; the label and an index
    make the ``first_name``, and every contact gets an ``appointment``."""
    rows = []
    for label, members in groups:
        for i, (phone, tz) in enumerate(members, start=1):
            rows.append(
                {
                    "phone": phone,
                    "timezone": tz,
                    "variables": {
                        "first_name": f"{label.title()}{i}",
                        "appointment": f"March {10 + i} at {1 + i % 5} PM",
                    },
                }
            )
    return rows
