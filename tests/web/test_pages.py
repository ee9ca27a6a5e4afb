"""The operator pages in headless Chromium, at desktop and phone widths: the call list
refreshing itself, transcript search, a finished call's analysis and per-turn latency,
a campaign started from its page with live progress to the end, the do-not-call list,
flows (view, validate, reload) and webhooks. Every page fits a phone screen (no
sideways scrolling of the page; "Log out" on screen) and sends nothing but its own
files (strict CSP: no console errors)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from switchboard_sim.assets import recording_ulaw
from switchboard_sim.calls import CallScript
from switchboard_sim.outbound import Callee
from tests.admin.conftest import AdminFactory, AdminStack, order_call
from tests.e2e.test_campaign_api import SPEC
from tests.e2e.test_recording import _flows as recording_flows
from tests.helpers import wait_until
from tests.web.test_operator_page import login

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CSV = (
    "phone,timezone,first_name,appointment\n"
    "+15555557201,UTC,Ann,Monday\n"
    "+15555557202,UTC,Bo,Friday\n"
)
#: Answers, holds 3 s in silence (no media stream), hangs up: long enough to watch.
HOLD = Callee("person", media=False, ring_ms=20, hold_ms=3000, amd_ms=10)


async def fits(page: Any, name: str) -> None:
    """The page does not scroll sideways and the Log out button is on screen."""
    width = await page.evaluate("() => window.innerWidth")
    scroll = await page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width + 1, f"{name}: the page is {scroll}px wide on a {width}px screen"
    box = await page.locator("#logout-btn").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)


async def finished_call(admin: AdminStack) -> str:
    sid = await order_call(admin)  # the bridge emits call.ended: analysis and search follow

    async def ready() -> bool:
        r = await admin.http.get(f"/admin/calls/{sid}/analysis", headers=admin.read)
        s = await admin.http.get("/admin/calls/search", headers=admin.read, params={"q": "shipped"})
        return r.status_code == 200 and bool(s.json()["items"])

    await wait_until(ready, 30, what="the call analysed and indexed")
    return sid


async def test_every_page_at_desktop_and_phone_widths(
    make_admin: AdminFactory, browser: Any, shots: Path
) -> None:
    admin: AdminStack = await make_admin(
        events_poll_ms=20, dialer_poll_ms=50, dialer_account_cps=20
    )
    admin.stack.rest.outbound.rules.default = HOLD
    sid = await finished_call(admin)
    await admin.http.post(
        "/admin/webhooks",
        headers=admin.write,
        json={"url": "http://127.0.0.1:9/hook", "events": ["call.ended"], "description": "crm"},
    )
    r = await admin.http.post("/admin/campaigns", json=SPEC, headers=admin.write)
    cid = r.json()["id"]
    await admin.http.post(
        f"/admin/campaigns/{cid}/contacts",
        content=CSV,
        headers={**admin.write, "Content-Type": "text/csv"},
    )

    base = admin.stack.base_url
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await login(page, base, admin.write_key)

    # The call list refreshes itself: a call stored now shows up without a reload.
    await page.wait_for_selector(f"#calls-body tr[data-sid='{sid}']")
    new_sid = "CA" + "7" * 32
    await admin.stack.store.create_call(
        call_sid=new_sid,
        direction="outbound",
        from_number="+15550100000",
        to_number="+15555550777",
        flow="reminder",
        status="ringing",
        created_at_ms=4_000_000_000_000,  # newer than anything: the top of the list
    )
    await page.wait_for_selector(f"#calls-body tr[data-sid='{new_sid}']", timeout=15_000)

    # Search from the dashboard.
    await page.fill("#search-q", "shipped order")
    await page.click("#search-btn")
    await page.wait_for_url("**/admin/ui/search?**")
    hit = page.locator(f"#hits li[data-sid='{sid}']")
    assert "shipped" in (await hit.inner_text()).lower()
    await page.screenshot(path=str(shots / "5-search.png"), full_page=True)

    # The finished call: analysis, per-turn latency, the state line.
    await page.click(f"#hits a[href='/admin/ui/calls/{sid}']")
    await page.wait_for_selector("#analysis")
    assert "get_order_status" in await page.inner_text("#analysis-summary")
    fields = await page.inner_text("#analysis-fields")
    assert "order_status" in fields and "1042" in fields
    assert await page.inner_text("#analysis-success") == "success"
    assert await page.locator("#transcript .lat").count() >= 1
    assert await page.inner_text("#call-state") == "ended"
    assert await page.query_selector("#recording") is None  # no recording stored
    await page.screenshot(path=str(shots / "6-call-analysis.png"), full_page=True)

    # A campaign started from its page, followed live to the end.
    await page.goto(f"{base}/admin/ui/campaigns")
    await page.click(f"#campaigns a[href='/admin/ui/campaigns/{cid}']")
    assert await page.inner_text("#c-status") == "draft"
    await page.click("#start-btn")
    await page.wait_for_selector("#c-status:has-text('running')", timeout=10_000)
    await page.wait_for_selector("#c-updated:has-text('updated')", timeout=10_000)  # polling
    await page.wait_for_selector("#c-status:has-text('completed')", timeout=60_000)
    await page.wait_for_selector("#outcomes-body td:has-text('answered')")
    await page.click(f"#contacts a[href='/admin/ui/campaigns/{cid}/contacts/1']")
    await page.wait_for_selector("#attempts a[href^='/admin/ui/calls/CA']")
    await page.screenshot(path=str(shots / "7-campaign-contact.png"), full_page=True)

    # The do-not-call list: add, then remove.
    await page.goto(f"{base}/admin/ui/dnc")
    await page.fill("#dnc-number", "(555) 555-0166")
    await page.fill("#dnc-reason", "asked on the phone")
    await page.click("#dnc-add")
    await page.wait_for_selector("#dnc-table td:has-text('asked on the phone')")
    await page.click("#dnc-table button[data-remove]")
    await page.wait_for_selector("#dnc-table button[data-remove]", state="detached")

    # Flows: view one, validate a bad and a good file, reload.
    await page.goto(f"{base}/admin/ui/flows")
    await page.click("#flows-table a[href='/admin/ui/flows/support']")
    assert "get_order_status" in await page.inner_text("#flow-json")
    await page.goto(f"{base}/admin/ui/flows")
    await page.fill("#validate-yaml", "name: demo\ninstructions: Be brief.\nvoice: [1, 2]\n")
    await page.click("#validate-btn")
    await page.wait_for_selector("#validate-result li:has-text('line 3')")
    await page.fill("#validate-yaml", "name: demo\ninstructions: Be brief.\n")
    await page.click("#validate-btn")
    await page.wait_for_selector("#validate-result .ok")
    await page.click("#reload-btn")
    await page.wait_for_selector("#reload-msg.ok")

    await page.goto(f"{base}/admin/ui/webhooks")
    assert "127.0.0.1:9/hook" in await page.inner_text("#webhooks-table")
    await page.goto(f"{base}/docs")
    await page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # served from here
    assert problems == [], problems

    # Every page on a phone.
    await page.set_viewport_size(PHONE)
    for path in (
        "/admin/ui",
        "/admin/ui/search?q=shipped",
        f"/admin/ui/calls/{sid}",
        "/admin/ui/campaigns",
        f"/admin/ui/campaigns/{cid}",
        f"/admin/ui/campaigns/{cid}/contacts/1",
        "/admin/ui/dnc",
        "/admin/ui/flows",
        "/admin/ui/flows/support",
        "/admin/ui/webhooks",
    ):
        await page.goto(base + path)
        await fits(page, path)
    await page.goto(f"{base}/admin/ui/calls/{sid}")
    await page.screenshot(path=str(shots / "8-call-phone.png"), full_page=True)
    await page.goto(f"{base}/admin/ui")
    await page.screenshot(path=str(shots / "9-calls-phone.png"), full_page=True)
    assert problems == [], problems
    await context.close()


async def test_the_recording_plays_from_the_turn_clicked(
    make_admin: AdminFactory, browser: Any, tmp_path: Path
) -> None:
    admin: AdminStack = await make_admin(  # support records its calls
        flows_dir=recording_flows(tmp_path), recordings_url=f"file://{tmp_path / 'rec'}"
    )
    script = CallScript(
        from_number="+15555550123",
        to_number="+15550100000",
        caller_audio=[recording_ulaw("order_status"), recording_ulaw("goodbye")],
        max_duration_s=40,
    )
    sid = (await admin.stack.sim.place_inbound_call(script)).call_sid
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await login(page, admin.stack.base_url, admin.read_key)
    await page.goto(f"{admin.stack.base_url}/admin/ui/calls/{sid}")
    audio = page.locator("#recording")
    assert await audio.get_attribute("src") == f"/admin/calls/{sid}/recording"
    await page.wait_for_function(
        "() => document.getElementById('recording').readyState >= 1", timeout=15_000
    )  # the WAV's header came through the page's own session
    caller = page.locator("#transcript li.user.seek").first
    offset = int(await caller.get_attribute("data-offset-ms") or 0)
    await caller.click()
    position = await page.evaluate("() => document.getElementById('recording').currentTime")
    assert abs(position * 1000 - offset) < 300, (position, offset)
    assert await caller.get_attribute("class") and "playing" in str(
        await caller.get_attribute("class")
    )
    await page.set_viewport_size(PHONE)
    await fits(page, "call with a recording")
    assert problems == [], problems
    await context.close()
