"""The dialer: claims due contacts, checks them, places calls, recovers lost leases.

Any number of dialers (inside ``switchboard serve`` and as ``switchboard dialer``
processes) share Redis; everything that must hold across them is a Lua script in
``app.dialer.store``. One pass (``step``) over every active campaign:

1. **Recover**: in-flight attempts past their deadline. A *leased* attempt (its dialer
   died or stalled before dialling) goes back to the due queue; the ``dial`` fence
   stops its old owner from dialling it later. A *dialing* attempt the carrier never
   mentioned (its dialer died around ``calls.create``) is finished ``failed`` (``lost``)
   and follows the retry policy. A placed call without a final callback is looked up at
   the carrier (``calls(sid).fetch``) and finished from its status, or given more time.
2. **Drain** waiting contacts of cancelled campaigns (``campaign_cancelled``) and of
   campaigns past their ``end_at`` (``expired``).
3. **Fill**: while the campaign's in-flight count is under ``max_concurrent``, a contact
   is due and a call slot is free (CPS), lease the next contact; then, right before
   dialling, check the calling window in the contact's zone, the global do-not-call list
   and the campaign's opt-outs; then take the call slot (``dial``: campaign CPS and the
   account-wide ``dialer.account_cps``) and place the call with ``calls.create`` in a
   background task (at most ``dialer.max_pending_dials`` per process).
4. **Complete** the campaign once nothing waits or is in flight.

``step`` returns when the next thing becomes possible (ms) so ``run`` sleeps until then
or ``dialer.poll_ms`` (work created by other processes is seen within it). Time comes
from an injected ``Clock``; tests drive ``step`` on a ``FakeClock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import secrets
import socket
from collections import deque
from collections.abc import Awaitable, Callable

from app import metrics
from app.dialer.clock import Clock
from app.dialer.models import CampaignStatus, Outcome
from app.dialer.placer import CallPlacer, OutboundCall
from app.dialer.service import TERMINAL_STATUSES, Campaigns
from app.dialer.store import CampaignStore, Claim, StoredCampaign
from app.dialer.window import allows, next_open
from app.errors import CampaignNotFound, DialerError, DialFailed, StoreError
from app.phone import mask
from app.settings import DialerSettings

log = logging.getLogger(__name__)

#: ``is_blocked(e164)``: the global do-not-call check.
DncCheck = Callable[[str], Awaitable[bool]]
#: Window (ms) of the ``switchboard_dialer_cps`` gauge (calls this process placed).
CPS_WINDOW_MS = 10_000
_E164_IN_TEXT = re.compile(r"\+[1-9]\d{7,14}")


def new_dialer_id() -> str:
    """``dialer-<host>-<pid>-<hex>``: unique per dialer instance."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-.")[:40] or "host"
    return f"dialer-{host}-{os.getpid()}-{secrets.token_hex(3)}"


def mask_numbers(text: str) -> str:
    """``text`` with every E.164-looking number masked (carrier error messages quote the
    number they refused)."""
    return _E164_IN_TEXT.sub(lambda m: mask(m.group(0)), text)


def interval_ms(cps: float) -> int:
    """Minimum ms between two call starts at ``cps`` calls per second."""
    return max(1, math.ceil(1000 / cps))


class Dialer:
    """One dialer instance (see the module doc). ``owner``: its id in leases."""

    def __init__(
        self,
        campaigns: Campaigns,
        *,
        placer: CallPlacer,
        dnc: DncCheck,
        clock: Clock,
        config: DialerSettings,
        owner: str | None = None,
    ) -> None:
        self.campaigns = campaigns
        self.store: CampaignStore = campaigns.store
        self.placer = placer
        self.dnc = dnc
        self.clock = clock
        self.config = config
        self.owner = owner or new_dialer_id()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._last_heartbeat = -(10**15)
        self._recent: dict[str, deque[int]] = {}
        self.placed = 0
        """Calls this instance placed (``calls.create`` answered with a SID)."""

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Run ``run()`` as a background task."""
        if self._runner is None:
            self._stop.clear()
            self._runner = asyncio.create_task(self.run(), name=f"dialer:{self.owner}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop dialling: no new claims; wait ≤ ``timeout_s`` for ``calls.create``
        requests already sent (their calls then run on; callbacks finish them)."""
        self._stop.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            try:
                async with asyncio.timeout(timeout_s):
                    await runner
            except TimeoutError:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
        await self.wait_dials(timeout_s)

    async def run(self) -> None:
        """Pass after pass until ``stop``; Redis or carrier trouble is logged and retried."""
        log.info("dialer %s running", self.owner)
        while not self._stop.is_set():
            now = self.clock.now_ms()
            wake: int | None = None
            try:
                wake = await self.step()
            except (StoreError, DialerError) as exc:
                log.error("dialer pass failed: %s", exc)
            except Exception:
                log.exception("dialer pass crashed")
            delay = self.config.poll_ms
            if wake is not None:
                delay = max(0, min(delay, wake - now))
            stop = asyncio.ensure_future(self._stop.wait())
            sleep = asyncio.ensure_future(self.clock.sleep_ms(max(delay, 1)))
            try:
                await asyncio.wait({stop, sleep}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (stop, sleep):
                    fut.cancel()
        log.info("dialer %s stopped", self.owner)

    async def wait_dials(self, timeout_s: float | None = None) -> None:
        """Wait until every ``calls.create`` this instance started has returned."""
        if not self._tasks:
            return
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def pending_dials(self) -> int:
        return len(self._tasks)

    # --- one pass ---------------------------------------------------------------------

    async def step(self) -> int | None:
        """One pass over every active campaign at ``clock.now_ms()``; returns the earliest
        time (ms) something new may be done, or None (nothing scheduled)."""
        now = self.clock.now_ms()
        if now - self._last_heartbeat >= self.config.heartbeat_ms:
            self._last_heartbeat = now
            await self.store.heartbeat(self.owner, now, self.config.heartbeat_ms * 6)
        wakes: list[int] = []
        for cid in await self.store.active_ids():
            try:
                wake = await self._campaign_step(cid, now)
            except CampaignNotFound:
                continue
            if wake is not None:
                wakes.append(wake)
        return min(wakes) if wakes else None

    async def _campaign_step(self, cid: str, now: int) -> int | None:
        campaign = await self.store.get(cid)
        wake = await self._recover(campaign, now)
        spec = campaign.spec
        if campaign.status is CampaignStatus.cancelled:
            await self.store.drain(cid, Outcome.campaign_cancelled, now, "campaign cancelled")
        elif campaign.status is CampaignStatus.running:
            end = spec.end_ms
            start = spec.start_ms
            if end is not None and now >= end:
                n = await self.store.drain(cid, Outcome.expired, now, "campaign ended")
                if n:
                    log.info("campaign %s ended: %d waiting contact(s) expired", cid, n)
            elif start is not None and now < start:
                wake = _earliest(wake, start)
            else:
                wake = _earliest(wake, await self._fill(campaign, now))
                if end is not None:
                    wake = _earliest(wake, end)
        status = await self.store.complete_if_done(cid, now)
        if status in ("completed", "cancelled"):
            await self.campaigns.campaign_finished(cid, status)
        return wake

    async def _fill(self, campaign: StoredCampaign, now: int) -> int | None:
        """Lease and dial due contacts while slots, rate and the pending bound allow."""
        cfg = self.config
        while len(self._tasks) < cfg.max_pending_dials:
            claim = await self.store.claim(
                campaign.id,
                owner=self.owner,
                now_ms=now,
                lease_ms=cfg.lease_ms,
                max_concurrent=campaign.spec.max_concurrent,
            )
            if claim.kind == "claimed":
                if not await self._prepare(campaign, claim, now):
                    return now + 1  # a dial slot was taken meanwhile: look again soon
                continue
            return claim.at_ms  # wait/rate: that time; full/empty/stopped: None (poll)
        return None

    async def _prepare(self, campaign: StoredCampaign, claim: Claim, now: int) -> bool:
        """Checks right before the dial, then the dial itself. False when the rate slot
        was lost to another dialer (the contact went back to the queue)."""
        cid, n, aid = campaign.id, claim.contact, claim.attempt
        spec = campaign.spec
        contact = await self.store.contact(cid, n)
        phone, tz = contact.get("phone", ""), contact.get("tz", "UTC")
        due = int(float(contact.get("due_at_ms") or now))
        if not allows(spec.window, now, tz):
            opening = next_open(spec.window, now, tz)
            end = spec.end_ms
            if end is not None and opening >= end:
                await self.store.finish_leased(
                    cid,
                    n,
                    aid,
                    owner=self.owner,
                    outcome=Outcome.expired,
                    now_ms=now,
                    reason="no calling window before the campaign ends",
                )
            else:
                await self.store.release(cid, n, aid, owner=self.owner, due_ms=opening)
            return True
        if await self.dnc(phone):
            await self.store.finish_leased(
                cid, n, aid, owner=self.owner, outcome=Outcome.dnc, now_ms=now, reason="on DNC list"
            )
            metrics.DIALER_ATTEMPTS.labels(cid, "blocked_dnc").inc()
            log.info("campaign %s contact %s (%s) is on the DNC list", cid, n, mask(phone))
            return True
        if await self.store.is_opted_out(cid, phone):
            await self.store.finish_leased(
                cid,
                n,
                aid,
                owner=self.owner,
                outcome=Outcome.opted_out,
                now_ms=now,
                reason="opted out of the campaign",
            )
            metrics.DIALER_ATTEMPTS.labels(cid, "blocked_opt_out").inc()
            return True
        result = await self.store.dial(
            cid,
            n,
            aid,
            owner=self.owner,
            now_ms=now,
            campaign_interval_ms=interval_ms(spec.cps),
            account_interval_ms=interval_ms(self.config.account_cps),
            deadline_ms=now + self.config.dial_grace_ms,
        )
        if result.kind == "ok":
            task = asyncio.create_task(self._place(campaign, aid, phone), name=f"dial:{aid}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return True
        if result.kind in ("rate", "stopped"):
            await self.store.release(cid, n, aid, owner=self.owner, due_ms=due)
            return result.kind != "rate"
        log.warning("attempt %s: lease lost before dialling (recovered by another dialer)", aid)
        return True

    async def _place(self, campaign: StoredCampaign, aid: str, phone: str) -> None:
        """``calls.create`` for one fenced attempt, then link the call SID."""
        spec, cid = campaign.spec, campaign.id
        voice, status, amd = self.campaigns.urls.for_attempt(aid)
        call = OutboundCall(
            to=phone,
            from_=spec.from_number,
            url=voice,
            status_callback=status,
            amd_callback=amd if spec.machine_detection else None,
            ring_timeout_s=spec.ring_timeout_s,
            time_limit_s=spec.time_limit_s,
        )
        try:
            sid = await self.placer.create(call)
        except DialFailed as exc:
            message = mask_numbers(str(exc))
            await self._quietly(self.store.note_dial_error(cid, message, self.clock.now_ms()))
            if exc.definite:
                log.warning("attempt %s: no call placed: %s", aid, message)
                await self._quietly(
                    self.campaigns.finish_attempt(aid, call_status="failed", error=message)
                )
            else:
                # Maybe placed: its callbacks (carrying ?attempt=) or recovery decide.
                log.warning("attempt %s: calls.create outcome unknown: %s", aid, message)
            return
        except Exception:
            log.exception("attempt %s: calls.create crashed", aid)
            return
        self.placed += 1
        metrics.DIALER_ATTEMPTS.labels(cid, "placed").inc()
        now = self.clock.now_ms()
        recent = self._recent.setdefault(cid, deque(maxlen=1000))
        recent.append(now)
        while recent and recent[0] <= now - CPS_WINDOW_MS:
            recent.popleft()
        metrics.DIALER_CPS.labels(cid).set(len(recent) * 1000 / CPS_WINDOW_MS)
        await self._quietly(
            self.store.progress(
                cid,
                aid,
                state="placed",
                stamp_field="placed_at_ms",
                now_ms=now,
                call_sid=sid,
                deadline_ms=now + self.campaigns.call_deadline_ms(spec, self.config.call_grace_ms),
            )
        )

    @staticmethod
    async def _quietly(awaitable: Awaitable[object]) -> None:
        try:
            await awaitable
        except (StoreError, DialerError) as exc:
            log.error("dialer bookkeeping failed: %s", exc)

    # --- recovery ---------------------------------------------------------------------

    async def _recover(self, campaign: StoredCampaign, now: int) -> int | None:
        """Deal with in-flight attempts past their deadline (see the module doc)."""
        cid = campaign.id
        for aid in await self.store.expired_inflight(cid, now):
            attempt = await self.store.attempt(aid)
            state = attempt.get("state")
            if not attempt or state == "done":
                await self.store.drop_inflight(cid, aid)
                continue
            n = attempt["contact"]
            if state == "leased":
                due = int(float(attempt.get("due_at_ms") or now))
                if await self.store.release(cid, n, aid, owner="", due_ms=due, recovered=True):
                    log.warning(
                        "attempt %s: lease of %s expired; contact %s back in the queue",
                        aid,
                        attempt.get("owner"),
                        n,
                    )
                continue
            call_sid = attempt.get("call_sid", "")
            if not call_sid:
                log.warning("attempt %s: dial lost (no word from the carrier)", aid)
                await self.store.note_dial_error(cid, "dial lost: no word from the carrier", now)
                await self.campaigns.finish_attempt(
                    aid,
                    call_status="failed",
                    error="dial lost: no word from the carrier",
                    lost=True,
                )
                continue
            try:
                state_now = await self.placer.fetch(call_sid)
            except DialFailed as exc:
                log.warning("attempt %s: carrier lookup failed: %s", aid, exc)
                await self.store.extend_inflight(cid, aid, now + self.config.call_grace_ms)
                continue
            if state_now is None:
                await self.campaigns.finish_attempt(
                    aid, call_status="failed", error="the carrier does not know the call"
                )
            elif state_now.status in TERMINAL_STATUSES:
                await self.campaigns.finish_attempt(
                    aid, call_status=state_now.status, answered_by=state_now.answered_by or ""
                )
            else:
                await self.store.extend_inflight(cid, aid, now + self.config.call_grace_ms)
        return None


def _earliest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
