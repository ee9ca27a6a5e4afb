"""A 50-contact reminder campaign against the offline carrier, on a fake clock.

People answer (through the real bridge and engine, variables filled into the flow) and
confirm, cancel or opt out on the keypad; voicemail boxes get the message after the
beep; others are busy, never answer, fail, are on the DNC list or are opted out through
the API before their retry. Checked: every contact's final state, retries exactly at
the configured back-off (pushed to the next calling window when needed), every dial
inside the contact's local window, nobody dialled after opting out, call records.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.admin.dnc import DncList
from app.dialer.clock import FakeClock
from app.dialer.models import CampaignSpec
from app.dialer.runtime import DialerRuntime
from app.dialer.window import allows, next_open
from app.store.keys import Keys
from switchboard_sim.outbound import Callee
from switchboard_sim.summary import read_call
from tests.dialer.e2e_support import (
    FROM,
    REMINDER_SCENARIO,
    T0,
    WINDOW,
    contact_rows,
    drive,
    keypad_person,
    voicemail,
)
from tests.e2e.conftest import Stack, StackFactory

NY, LDN, LA, TYO, SYD = (
    "America/New_York",
    "Europe/London",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
ZONES = [NY, LDN, LA, TYO, SYD]
BUSY_BACKOFF = [1800, 3600]
NO_ANSWER_BACKOFF = [1800, 7200]
FAILED_BACKOFF = [600]


def numbers(start: int, count: int) -> list[tuple[str, str]]:
    return [(f"+1555555{n:04d}", ZONES[n % len(ZONES)]) for n in range(start, start + count)]


GROUPS: dict[str, list[tuple[str, str]]] = {
    "confirm": numbers(100, 6),
    "cancel": numbers(110, 3),
    "optout": numbers(120, 3),
    "voicemail": numbers(130, 10),
    "busythen": numbers(150, 8),
    "noanswer": [(p, LDN if i < 3 else tz) for i, (p, tz) in enumerate(numbers(160, 6))],
    "failed": numbers(170, 4),
    "dnc": numbers(180, 4),
    "quick": numbers(190, 3),
    "apioptout": numbers(200, 3),
}
EXPECTED = {
    "confirm": ("confirmed", 1),
    "cancel": ("cancelled", 1),
    "optout": ("opted_out", 1),
    "voicemail": ("voicemail_left", 1),
    "busythen": ("confirmed", 2),
    "noanswer": ("no_answer", 3),
    "failed": ("failed", 2),
    "dnc": ("dnc", 0),
    "quick": ("answered", 1),
    "apioptout": ("opted_out", 1),
}
VOICEMAIL_MESSAGE = (
    "Hi {{first_name}}, this is Acme Health about your appointment on {{appointment}}. "
    "Please call us back."
)


def _rules(stack: Stack) -> None:
    rules = stack.rest.outbound.rules
    for phone, _ in GROUPS["confirm"]:
        rules.set(phone, keypad_person("1"))
    for phone, _ in GROUPS["cancel"]:
        rules.set(phone, keypad_person("2"))
    for phone, _ in GROUPS["optout"]:
        rules.set(phone, keypad_person("3"))
    for phone, _ in GROUPS["voicemail"]:
        rules.set(phone, voicemail())
    for phone, _ in GROUPS["busythen"]:
        rules.set(phone, Callee("busy", ring_ms=20), keypad_person("1"))
    for phone, _ in GROUPS["noanswer"]:
        rules.set(phone, Callee("no-answer", ring_ms=40))
    for phone, _ in GROUPS["failed"]:
        rules.set(phone, Callee("failed"))
    for phone, _ in GROUPS["quick"]:
        rules.set(phone, Callee("person", media=False, hold_ms=50))
    for phone, _ in GROUPS["apioptout"]:
        rules.set(phone, Callee("busy", ring_ms=20))  # would be busy; never called again


async def test_fifty_contact_campaign(make_stack: StackFactory) -> None:
    stack: Stack = await make_stack(
        engine_pace=20.0,
        scenario=REMINDER_SCENARIO,
        dialer_enabled=False,
        dialer_account_cps=1.0,
    )
    stack.rest.outbound.callback_repeats = 2  # Twilio-style retries: must be idempotent
    _rules(stack)
    runtime: DialerRuntime = stack.app.state.dialer
    clock = FakeClock(T0)
    runtime.use_clock(clock)
    dialer = runtime.dialer("dialer-under-test")
    campaigns = runtime.campaigns
    keys = Keys(stack.settings.redis_prefix)
    dnc = DncList(stack.redis, keys)
    for phone, _ in GROUPS["dnc"]:
        await dnc.add(phone, reason="test")

    spec = CampaignSpec.model_validate(
        {
            "name": "March reminders",
            "flow": "reminder",
            "from_number": FROM,
            "window": WINDOW.model_dump(),
            "max_concurrent": 4,
            "cps": 1,
            "retry": {
                "busy": {"retries": 2, "backoff_s": BUSY_BACKOFF},
                "no_answer": {"retries": 2, "backoff_s": NO_ANSWER_BACKOFF},
                "failed": {"retries": 1, "backoff_s": FAILED_BACKOFF},
                "max_attempts": 4,
            },
            "voicemail": "leave_message",
            "voicemail_message": VOICEMAIL_MESSAGE,
            "ring_timeout_s": 25,
            "time_limit_s": 300,
        }
    )
    campaign = await campaigns.create(spec)
    cid = campaign.id
    rows = contact_rows(list(GROUPS.items()))
    assert len(rows) == 50
    report = await campaigns.import_contacts(cid, orjson.dumps(rows), "json")
    assert (report.imported, report.rejected) == (50, 0)
    await campaigns.start(cid)

    # First pass until the API opt-out group has had its busy first attempt, then opt
    # them out (as an operator would) before their retry comes due.
    opted: set[str] = set()

    async def opt_out_when_busy() -> None:
        for n, (phone, _) in enumerate(GROUPS["apioptout"]):
            if phone in opted:
                continue
            idx = rows.index(next(r for r in rows if r["phone"] == phone)) + 1
            history = await campaigns.contact_history(cid, str(idx))
            if history["attempts"] and history["attempts"][0]["outcome"] == "busy":
                await campaigns.opt_out_number(cid, phone)
                opted.add(phone)
            del n

    original_step = dialer.step

    async def step_with_operator() -> int | None:
        await opt_out_when_busy()
        return await original_step()

    dialer.step = step_with_operator  # type: ignore[method-assign]
    await drive(campaigns, dialer, clock, cid)
    assert opted == {p for p, _ in GROUPS["apioptout"]}

    stats = await campaigns.stats(cid)
    assert stats["status"] == "completed"
    assert (stats["pending"], stats["in_progress"], stats["done"]) == (0, 0, 50)
    assert stats["outcomes"] == {
        "answered": 3,
        "cancelled": 3,
        "confirmed": 14,
        "dnc": 4,
        "failed": 4,
        "no_answer": 6,
        "opted_out": 6,
        "voicemail_left": 10,
    }

    dialed_by_number: dict[str, int] = {}
    for record in stack.rest.outbound.log:
        dialed_by_number[record.to] = dialed_by_number.get(record.to, 0) + 1
        assert record.params["From"] == FROM
        assert record.params["MachineDetection"] == "DetectMessageEnd"
        assert record.params["AsyncAmd"] == "true"
        assert record.params["TimeLimit"] == "300" and record.params["Timeout"] == "25"
    attempt_ids = [r.attempt for r in stack.rest.outbound.log]
    assert len(attempt_ids) == len(set(attempt_ids)) == stats["attempts"]

    histories: dict[str, dict[str, Any]] = {}
    for idx, row in enumerate(rows, start=1):
        histories[row["phone"]] = await campaigns.contact_history(cid, str(idx))
    for group, members in GROUPS.items():
        outcome, attempts = EXPECTED[group]
        for phone, tz in members:
            h = histories[phone]
            contact, tries = h["contact"], h["attempts"]
            assert (contact["state"], contact["outcome"]) == ("done", outcome), (group, h)
            assert len(tries) == attempts == dialed_by_number.get(phone, 0), (group, h)
            for k, a in enumerate(tries):
                # Nobody is called outside their window.
                assert allows(WINDOW, a["dialed_at_ms"], tz), (group, tz, a)
                assert a["dialed_at_ms"] >= a["due_at_ms"]
                assert a["dialed_at_ms"] - a["due_at_ms"] <= 60_000  # queued behind 1 CPS
                if k + 1 < len(tries):
                    backoff = {
                        "busy": BUSY_BACKOFF,
                        "no_answer": NO_ANSWER_BACKOFF,
                        "failed": FAILED_BACKOFF,
                    }[a["outcome"]]
                    same = sum(1 for b in tries[:k] if b["outcome"] == a["outcome"])
                    expected = next_open(WINDOW, a["ended_at_ms"] + backoff[same] * 1000, tz)
                    assert a["retry_at_ms"] == expected, (group, a)
                    assert tries[k + 1]["due_at_ms"] == expected

    # London no-answer contacts: 15:00, 15:30, then 17:30 is after the window → Tue 09:00.
    for phone, tz in GROUPS["noanswer"][:3]:
        assert tz == LDN
        tries = histories[phone]["attempts"]
        third = tries[2]["dialed_at_ms"]
        assert third >= T0 + 18 * 3600_000  # Tuesday 09:00 London
    # API opt-outs: one busy attempt, then never dialled again.
    for phone, _ in GROUPS["apioptout"]:
        assert histories[phone]["contact"]["reason"] == "opted out of the campaign"

    # Voicemail: the contact's message, after the beep; the call hung up by the server.
    vm_results = [r for r in stack.rest.outbound.results.values() if r.kind == "voicemail"]
    assert len(vm_results) == 10
    for r in vm_results:
        assert r.message_after_beep is True
        assert r.voicemail_message and "Please call us back" in r.voicemail_message
        first_name = histories[r.to]["contact"]["variables"]["first_name"]
        assert f"Hi {first_name}," in r.voicemail_message

    # A confirmed call went through the real bridge and engine with its variables.
    phone = GROUPS["confirm"][0][0]
    (attempt,) = histories[phone]["attempts"]
    assert attempt["answered_by"] == "human" and attempt["result"] == "confirmed"
    stored = await read_call(stack.store, attempt["call_sid"], wait_s=5.0)
    record = stored["record"]
    assert record["direction"] == "outbound" and record["campaign"] == cid
    assert record["flow"] == "reminder"
    variables = histories[phone]["contact"]["variables"]
    agent = " ".join(e["text"] for e in stored["transcript"] if e["role"] == "assistant")
    assert f"Hi {variables['first_name']}" in agent and variables["appointment"] in agent
    assert "{{" not in agent
    assert [t["name"] for t in stored["tool_calls"]] == ["record_outcome"]
    (routing,) = stored["routing"]
    assert routing["reason"] == "campaign"
    # An opt-out by keypad reached the campaign's opt-out list at once.
    phone = GROUPS["optout"][0][0]
    assert await campaigns.store.is_opted_out(cid, phone)
    print("LIVE", list(stack.services.live.calls), stack.rest.outbound.active)
