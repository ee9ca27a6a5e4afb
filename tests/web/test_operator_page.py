"""The operator's page in headless Chromium against a live simulated call: log in, watch
the call appear by itself, open it, see the interrupted greeting, make the agent say
something, hang up with the button, then find the call with the filters."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from app.phone import mask
from tests.admin.conftest import CALLER, AdminStack, long_call


async def login(page: Any, base: str, key: str) -> None:
    await page.goto(f"{base}/admin/ui")
    assert "/admin/ui/login" in page.url  # no session: sent to the login form
    await page.fill("#key", key)
    await page.click("#login-btn")
    await page.wait_for_url(f"{base}/admin/ui")


async def test_click_through_a_live_call(admin: AdminStack, browser: Any, shots: Path) -> None:
    base = admin.stack.base_url
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    await login(page, base, admin.write_key)
    cookie = next(c for c in await context.cookies() if c["name"] == "sb_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    assert await page.inner_text("#live-empty") == "No calls in progress."

    # The caller talks over the greeting 1.5 s in, then stays on the line.
    call = asyncio.create_task(
        admin.stack.sim.place_inbound_call(long_call(barge_in_after_ms=1500))
    )
    row = await page.wait_for_selector("#live-body tr[data-sid]", timeout=15_000)
    sid = await row.get_attribute("data-sid")
    assert sid and mask(CALLER) in await row.inner_text()
    assert await page.inner_text("#live-count") == "1"
    await page.screenshot(path=str(shots / "1-dashboard-live.png"), full_page=True)

    await page.click(f"#live-body a[href='/admin/ui/calls/{sid}']")
    await page.wait_for_selector("#hangup-btn")
    assert await page.inner_text("#live-badge") == "live"
    # The interrupted greeting shows up as such (the page follows the transcript).
    await page.wait_for_selector("#transcript li.assistant.interrupted .badge.cut", timeout=15_000)
    await page.wait_for_selector("#transcript li.user", timeout=15_000)

    await page.fill("#say-text", "Please hold while I check.")
    await page.click("#say-btn")
    await page.wait_for_selector("#control-msg.ok")
    await page.wait_for_selector(
        "#transcript li.assistant:has-text('Please hold while I check.')", timeout=20_000
    )
    await page.screenshot(path=str(shots / "2-call-live.png"), full_page=True)

    # A POST without the page's CSRF token is refused even with the session cookie.
    status = await page.evaluate(
        "sid => fetch(`/admin/calls/${sid}/hangup`, {method: 'POST'}).then(r => r.status)", sid
    )
    assert status == 403
    assert errors.pop().startswith("403 ")  # that refusal, and nothing else so far

    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.click("#hangup-btn")
    await page.wait_for_selector("#control-msg.ok")
    result = await asyncio.wait_for(call, 20)
    assert result.ended_by == "hangup"
    # The page notices the end by itself and re-renders the finished call.
    await page.wait_for_selector("#live-badge.ended", timeout=15_000)
    await page.wait_for_selector("#tools td:has-text('get_order_status')", timeout=15_000)
    assert await page.query_selector("#hangup-btn") is None
    assert "hangup: operator" in await page.inner_text("dl.facts")
    assert "number_match" in await page.inner_text("#routing")
    await page.screenshot(path=str(shots / "3-call-ended.png"), full_page=True)

    # The call list, filtered by the caller's number in another spelling.
    await page.goto(f"{base}/admin/ui")
    await page.fill("input[name=number]", "(555) 555-0123")
    await page.select_option("select[name=flow]", "support")
    await page.click("#filters button[type=submit]")
    await page.wait_for_selector(f"#calls a[href='/admin/ui/calls/{sid}']")
    await page.screenshot(path=str(shots / "4-calls-filtered.png"), full_page=True)
    await page.fill("input[name=number]", "+15555550999")
    await page.click("#filters button[type=submit]")
    await page.wait_for_selector("#calls td:has-text('No calls match.')")
    assert errors == [], errors
    await context.close()


async def test_read_key_sees_no_controls(admin: AdminStack, browser: Any) -> None:
    base = admin.stack.base_url
    page = await browser.new_page()
    await page.goto(f"{base}/admin/ui/login")
    await page.fill("#key", "sbk_000000000000_" + "A" * 43)
    await page.click("#login-btn")
    assert "That key is not valid." in await page.inner_text(".error")

    call = asyncio.create_task(admin.stack.sim.place_inbound_call(long_call()))
    await login(page, base, admin.read_key)
    row = await page.wait_for_selector("#live-body tr[data-sid]", timeout=15_000)
    sid = await row.get_attribute("data-sid")
    await page.goto(f"{base}/admin/ui/calls/{sid}")
    assert await page.query_selector("#hangup-btn") is None
    assert "read scope" in await page.inner_text("#call")
    r = await admin.http.post(f"/admin/calls/{sid}/hangup", headers=admin.write)
    assert r.status_code == 200
    assert (await asyncio.wait_for(call, 20)).ended_by == "hangup"

    await page.click("button:has-text('Log out')")
    await page.wait_for_url(f"{base}/admin/ui/login")
    await page.goto(f"{base}/admin/ui")
    assert "/admin/ui/login" in page.url
    await page.close()
