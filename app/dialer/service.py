"""``Campaigns``: campaign operations and the carrier's outbound callbacks.

Used by the ``/admin/campaigns`` API and the CLI (create, import, start, pause, resume,
cancel, stats, history), by the Twilio routes (voice webhook of an answered outbound
call, status and AMD callbacks) and by the dialer (finishing attempts it recovers).

Finishing an attempt (``finish_attempt``) is idempotent: Twilio retries callbacks and a
dialer may recover the same attempt, but the ``finish`` script lets exactly one caller
record the outcome and decide the contact's next step (``app.dialer.policy``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from twilio.twiml.voice_response import VoiceResponse

from app import metrics
from app.dialer.clock import Clock
from app.dialer.contacts import ParsedContacts, RowError, parse_contacts
from app.dialer.models import (
    RESULT_OUTCOMES,
    CampaignSpec,
    CampaignStatus,
    Outcome,
    VoicemailAction,
)
from app.dialer.placer import CallPlacer
from app.dialer.policy import carrier_outcome, decide
from app.dialer.store import CampaignStore, NewContact, StoredCampaign
from app.dialer.window import next_open
from app.errors import (
    CampaignNotFound,
    CampaignStateError,
    ContactFileError,
    DialFailed,
    StoreError,
)
from app.events import EventBus
from app.phone import mask, normalize
from flows import FlowCatalog
from flows.variables import fill, flow_placeholders, placeholders

log = logging.getLogger(__name__)

#: Final Twilio ``CallStatus`` values.
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
#: Attempt state and first-seen time field per non-final status callback.
_PROGRESS = {
    "queued": ("placed", "placed_at_ms"),
    "initiated": ("placed", "placed_at_ms"),
    "ringing": ("ringing", "ringing_at_ms"),
    "in-progress": ("answered", "answered_at_ms"),
    "answered": ("answered", "answered_at_ms"),
}
#: ``AnsweredBy`` values after which a voicemail message can be left (the beep passed).
MESSAGE_END = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})


@dataclass(frozen=True, slots=True)
class OutboundAnswer:
    """What the voice webhook needs for an answered campaign call. ``active`` is False
    when the attempt already finished (the webhook then hangs up)."""

    campaign: str
    attempt: str
    contact: str
    flow: str
    variables: dict[str, str]
    active: bool = True


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Result of an import: ``imported`` new contacts, ``rejected`` rows (``errors``,
    listed up to ``app.dialer.contacts.MAX_LISTED_ERRORS``)."""

    imported: int
    rejected: int
    errors: list[RowError]

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "rejected": self.rejected,
            "errors": [e.as_dict() for e in self.errors],
        }


@dataclass(frozen=True, slots=True)
class DialerUrls:
    """Public URLs Twilio calls back on (signatures are checked against them)."""

    voice: str
    status: str
    amd: str

    def for_attempt(self, aid: str) -> tuple[str, str, str]:
        """(voice URL, status callback, AMD callback) carrying ``?attempt=aid``."""
        q = f"?attempt={aid}"
        return self.voice + q, self.status + q, self.amd + q


class Campaigns:
    """Campaign operations over one ``CampaignStore``.

    ``flows``: returns the current flow catalog (flows can be reloaded); ``placer``:
    REST client used to leave voicemail messages / hang up machines; ``clock``: every
    time this object stamps or schedules. ``max_import_rows`` bounds one import.
    """

    def __init__(
        self,
        store: CampaignStore,
        *,
        clock: Clock,
        placer: CallPlacer,
        urls: DialerUrls,
        flows: Callable[[], FlowCatalog] | None = None,
        max_import_rows: int = 100_000,
        events: EventBus | None = None,
    ) -> None:
        self.store = store
        #: Where ``campaign.contact_finished`` and ``campaign.finished`` go (``app.events``).
        self.events = events
        self.clock = clock
        self.placer = placer
        self.urls = urls
        self._flows = flows
        self.max_import_rows = max_import_rows

    # --- management -------------------------------------------------------------------

    def _check_flow(self, spec: CampaignSpec) -> None:
        """Raise ``CampaignStateError`` unless the campaign's flow is loaded and not
        inbound-only (when this process has flows)."""
        if self._flows is None:
            return
        flow = self._flows().get(spec.flow)
        if flow is None:
            raise CampaignStateError(f"flow {spec.flow!r} is not loaded")
        if flow.direction == "inbound":
            raise CampaignStateError(f"flow {spec.flow!r} is inbound-only")

    async def create(self, spec: CampaignSpec) -> StoredCampaign:
        """Store a draft campaign. Raises ``CampaignStateError`` for an unknown or
        inbound-only flow."""
        self._check_flow(spec)
        campaign = await self.store.create(spec, self.clock.now_ms())
        log.info("campaign %s created (%s, flow %s)", campaign.id, spec.name, spec.flow)
        return campaign

    async def get(self, cid: str) -> StoredCampaign:
        return await self.store.get(cid)

    async def list_campaigns(self, limit: int = 100) -> list[StoredCampaign]:
        out = []
        for cid in await self.store.list_ids(limit):
            try:
                out.append(await self.store.get(cid))
            except CampaignNotFound:
                continue
        return out

    async def import_contacts(self, cid: str, data: bytes, fmt: str) -> ImportReport:
        """Parse ``data`` (``csv``/``json``) and store the good rows. Rows whose number is
        already in the campaign, or which lack a variable the flow uses, are reported
        like other bad rows. Raises ``CampaignNotFound``, ``CampaignStateError``
        (finished campaign) or ``ContactFileError`` (unreadable file)."""
        campaign = await self.store.get(cid)
        if campaign.status in (CampaignStatus.completed, CampaignStatus.cancelled):
            raise CampaignStateError(f"campaign {cid} is {campaign.status.value}")
        spec = campaign.spec
        try:
            parsed: ParsedContacts = parse_contacts(
                data, fmt, default_tz=spec.default_timezone, max_rows=self.max_import_rows
            )
        except ValueError as exc:
            raise ContactFileError(str(exc)) from None
        needed = placeholders(spec.voicemail_message)
        if self._flows is not None and (flow := self._flows().get(spec.flow)) is not None:
            needed |= flow_placeholders(flow)
        now = self.clock.now_ms()
        first = max(now, spec.start_ms or now)
        rows: list[NewContact] = []
        for row, contact in parsed.contacts:
            missing = sorted(n for n in needed if not contact.variables.get(n))
            if missing:
                parsed.reject(row, "variables", f"missing variable(s) the flow uses: {missing}")
                continue
            rows.append(NewContact(row, contact, next_open(spec.window, first, contact.timezone)))
        results = await self.store.add_contacts(cid, rows, now)
        imported = 0
        for new, n, existing in results:
            if n is None:
                parsed.reject(new.row, "phone", f"duplicate: already contact {existing}")
            else:
                imported += 1
        errors = sorted(parsed.errors, key=lambda e: e.row)
        log.info(
            "campaign %s: imported %d contact(s), rejected %d row(s)",
            cid,
            imported,
            parsed.error_count,
        )
        return ImportReport(imported, parsed.error_count, errors)

    async def start(self, cid: str) -> StoredCampaign:
        """``draft`` → ``running``. Raises ``CampaignStateError`` when the flow is not
        loaded, the campaign has no contacts or is not a draft."""
        campaign = await self.store.get(cid)
        self._check_flow(campaign.spec)
        if campaign.contacts == 0:
            raise CampaignStateError(f"campaign {cid} has no contacts")
        await self.store.set_status(
            cid,
            CampaignStatus.running,
            [CampaignStatus.draft],
            self.clock.now_ms(),
            "started_at_ms",
        )
        metrics.DIALER_CPS_LIMIT.labels(cid).set(campaign.spec.cps)
        log.info("campaign %s started", cid)
        return await self.store.get(cid)

    async def pause(self, cid: str) -> StoredCampaign:
        """``running`` → ``paused``: no new dials; calls in progress finish."""
        await self.store.set_status(
            cid, CampaignStatus.paused, [CampaignStatus.running], self.clock.now_ms()
        )
        log.info("campaign %s paused", cid)
        return await self.store.get(cid)

    async def resume(self, cid: str) -> StoredCampaign:
        """``paused`` → ``running``. Raises ``CampaignStateError`` if the flow is gone."""
        campaign = await self.store.get(cid)
        self._check_flow(campaign.spec)
        await self.store.set_status(
            cid, CampaignStatus.running, [CampaignStatus.paused], self.clock.now_ms()
        )
        log.info("campaign %s resumed", cid)
        return await self.store.get(cid)

    async def cancel(self, cid: str) -> StoredCampaign:
        """Stop for good: waiting contacts end ``campaign_cancelled``; calls in progress
        finish (their retries are dropped)."""
        now = self.clock.now_ms()
        await self.store.set_status(
            cid,
            CampaignStatus.cancelled,
            [CampaignStatus.draft, CampaignStatus.running, CampaignStatus.paused],
            now,
            "ended_at_ms",
        )
        drained = await self.store.drain(cid, Outcome.campaign_cancelled, now, "campaign cancelled")
        await self.store.complete_if_done(cid, now)
        log.info("campaign %s cancelled (%d waiting contact(s) ended)", cid, drained)
        return await self.store.get(cid)

    async def delete(self, cid: str) -> None:
        """Delete a completed, cancelled or draft campaign and its contacts."""
        campaign = await self.store.get(cid)
        if campaign.status in (CampaignStatus.running, CampaignStatus.paused):
            raise CampaignStateError(f"campaign {cid} is {campaign.status.value}; cancel it first")
        if await self.store.expired_inflight(cid, 2**62, limit=1):
            raise CampaignStateError(f"campaign {cid} still has calls in flight")
        await self.store.delete(cid)

    async def opt_out_number(self, cid: str, number: str) -> None:
        """Opt ``number`` out of campaign ``cid`` (takes effect before the next dial).
        Raises ``ValueError`` for a malformed number, ``CampaignNotFound``."""
        e164 = normalize(number)
        await self.store.get(cid)
        await self.store.add_opt_out(cid, e164)
        log.info("campaign %s: %s opted out", cid, mask(e164))

    async def stats(self, cid: str) -> dict[str, Any]:
        """``{id, name, status, contacts, pending, in_progress, done, attempts, outcomes:
        {outcome: contacts}, attempt_outcomes: {outcome: attempts}, recovered_leases,
        lost_dials, next_due_at_ms, dial_errors, last_dial_error, last_dial_error_at_ms}``.
        ``pending`` + ``in_progress`` + ``done`` = ``contacts`` (``in_progress`` counts
        leased and on-call attempts); ``last_dial_error``: the message (numbers masked) of
        the latest failed ``calls.create``, ``dial_errors`` how many failed."""
        return await self.store.stats(cid)

    async def contact_history(self, cid: str, n: str) -> dict[str, Any]:
        """One contact (number masked) with its attempts, oldest first. Raises
        ``CampaignNotFound`` for an unknown campaign or contact."""
        raw = await self.store.contact(cid, n)
        if not raw:
            raise CampaignNotFound(f"campaign {cid!r} has no contact {n!r}")
        attempts = await self.store.contact_attempts(cid, n)
        return {"contact": public_contact(raw), "attempts": [public_attempt(a) for a in attempts]}

    async def contacts(self, cid: str, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Contacts ``offset+1 … offset+limit`` in import order (numbers masked)."""
        await self.store.get(cid)
        total = await self.store.contact_count(cid)
        out = []
        for n in range(offset + 1, min(total, offset + limit) + 1):
            raw = await self.store.contact(cid, str(n))
            if raw:
                out.append(public_contact(raw))
        return out

    # --- carrier callbacks ------------------------------------------------------------

    async def _attempt_for(self, call_sid: str, hint: str | None) -> tuple[str, dict[str, str]]:
        """The attempt of a callback: by the ``attempt`` query parameter we put in the
        callback URL, else by call SID. ``("", {})`` when it is not a campaign call."""
        aid = hint or await self.store.attempt_for_call(call_sid)
        if not aid:
            return "", {}
        attempt = await self.store.attempt(aid)
        if not attempt:
            return aid, {}
        known = attempt.get("call_sid")
        if known and known != call_sid:
            log.warning(
                "callback for %s names attempt %s of call %s; ignored", call_sid, aid, known
            )
            return aid, {}
        return aid, attempt

    async def answer(self, call_sid: str, hint: str | None) -> OutboundAnswer | None:
        """The voice webhook of an answered outbound call: link the call to its attempt
        and return the flow and contact variables. None when it is not a campaign call;
        ``active=False`` when its attempt is unknown or already finished."""
        aid, attempt = await self._attempt_for(call_sid, hint)
        if not aid:
            return None
        if not attempt or attempt.get("state") in ("done", "leased"):
            return OutboundAnswer(attempt.get("campaign", ""), aid, "", "", {}, active=False)
        cid, n = attempt["campaign"], attempt["contact"]
        campaign = await self.store.get(cid)
        contact = await self.store.contact(cid, n)
        now = self.clock.now_ms()
        await self.store.progress(
            cid, aid, state="answered", stamp_field="answered_at_ms", now_ms=now, call_sid=call_sid
        )
        return OutboundAnswer(
            campaign=cid,
            attempt=aid,
            contact=n,
            flow=campaign.spec.flow,
            variables=_variables(contact),
        )

    async def on_status(self, params: dict[str, str], hint: str | None) -> bool:
        """A status callback (``initiated`` … ``completed``). Returns False when the call
        is not a campaign call. Repeats are harmless: progress only moves forward and an
        attempt finishes once."""
        call_sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
        aid, attempt = await self._attempt_for(call_sid, hint)
        if not aid:
            return False
        if not attempt:
            log.info("status %s for unknown attempt %s (call %s) ignored", status, aid, call_sid)
            return True
        cid = attempt["campaign"]
        now = self.clock.now_ms()
        if status in _PROGRESS:
            state, field = _PROGRESS[status]
            deadline = None
            if state == "placed":
                spec = (await self.store.get(cid)).spec
                deadline = now + self.call_deadline_ms(spec)
            await self.store.progress(
                cid,
                aid,
                state=state,
                stamp_field=field,
                now_ms=now,
                call_sid=call_sid,
                deadline_ms=deadline,
            )
            return True
        if status in TERMINAL_STATUSES:
            await self.store.progress(
                cid, aid, state="placed", stamp_field="", now_ms=now, call_sid=call_sid
            )
            error = params.get("SipResponseCode", "")
            await self.finish_attempt(
                aid,
                call_status=status,
                answered_by=params.get("AnsweredBy", ""),
                error=f"SIP {error}" if error and status != "completed" else "",
            )
            return True
        log.info("status %r of attempt %s ignored", status, aid)
        return True

    async def on_amd(self, params: dict[str, str], hint: str | None) -> bool:
        """The async AMD callback: record ``AnsweredBy``; for a machine apply the
        campaign's voicemail policy (leave the message after the beep, or hang up).
        Returns False when the call is not a campaign call."""
        call_sid, answered_by = params.get("CallSid", ""), params.get("AnsweredBy", "")
        aid, attempt = await self._attempt_for(call_sid, hint)
        if not aid:
            return False
        if not attempt or attempt.get("state") == "done":
            log.info("AMD %s for finished or unknown attempt %s ignored", answered_by, aid)
            return True
        if not await self.store.mark_amd(aid, answered_by, self.clock.now_ms()):
            log.info("repeated AMD %s for attempt %s ignored", answered_by, aid)
            return True
        if answered_by in ("human", "unknown", ""):
            return True
        cid = attempt["campaign"]
        spec = (await self.store.get(cid)).spec
        try:
            if answered_by in MESSAGE_END and spec.voicemail is VoicemailAction.leave_message:
                contact = await self.store.contact(cid, attempt["contact"])
                text = fill(spec.voicemail_message or "", _variables(contact))
                response = VoiceResponse()
                response.say(text)
                response.hangup()
                await self.placer.update_twiml(call_sid, str(response))
                await self.store.set_attempt_fields(aid, voicemail_at_ms=self.clock.now_ms())
                log.info("attempt %s: voicemail message left", aid)
            else:
                await self.placer.hangup(call_sid)
                log.info("attempt %s: %s, hung up", aid, answered_by)
        except DialFailed as exc:
            log.warning("attempt %s: voicemail action failed: %s", aid, exc)
            await self.store.set_attempt_fields(aid, error=str(exc)[:300])
        return True

    # --- finishing attempts (callbacks and the dialer's recovery) ----------------------

    @staticmethod
    def call_deadline_ms(spec: CampaignSpec, grace_ms: int = 120_000) -> int:
        """How long a placed call may stay without a final callback before the dialer
        asks the carrier about it: ring timeout + time limit + ``grace_ms``."""
        return (spec.ring_timeout_s + spec.time_limit_s) * 1000 + grace_ms

    async def finish_attempt(
        self,
        aid: str,
        *,
        call_status: str,
        answered_by: str = "",
        error: str = "",
        lost: bool = False,
    ) -> bool:
        """Record a dialled attempt's end and decide the contact's next step; True for
        the caller that finished it, False when it was finished already (or unknown)."""
        attempt = await self.store.attempt(aid)
        if not attempt or attempt.get("state") in ("done", "leased"):
            return False
        cid, n = attempt["campaign"], attempt["contact"]
        campaign = await self.store.get(cid)
        contact = await self.store.contact(cid, n)
        answered = attempt.get("answered_by") or answered_by
        outcome = carrier_outcome(call_status, answered)
        result = attempt.get("result", "")
        if result and (result in RESULT_OUTCOMES or result == Outcome.opted_out.value):
            outcome = Outcome(result)
        elif outcome is Outcome.voicemail and attempt.get("voicemail_at_ms"):
            outcome = Outcome.voicemail_left
        previous = {k[2:]: int(v) for k, v in contact.items() if k.startswith("o:")}
        now = self.clock.now_ms()
        decision = decide(
            campaign.spec,
            outcome,
            previous=previous,
            attempts=int(contact.get("attempts", "1")),
            ended_ms=now,
            tz=contact.get("tz", "UTC"),
            running=campaign.status in (CampaignStatus.running, CampaignStatus.paused),
        )
        done = await self.store.finish(
            cid,
            n,
            aid,
            attempt_outcome=outcome,
            final=decision.final,
            retry_at_ms=decision.retry_at_ms,
            reason=decision.reason,
            now_ms=now,
            carrier_status=call_status,
            answered_by=answered,
            error=error[:300],
            lost=lost,
        )
        if done:
            metrics.DIALER_ATTEMPTS.labels(cid, outcome.value).inc()
            log.info(
                "attempt %s (campaign %s contact %s): %s → %s",
                aid,
                cid,
                n,
                outcome.value,
                decision.final.value if decision.final else f"retry at {decision.retry_at_ms}",
            )
            if decision.final is not None:
                await self._contact_finished(cid, n, contact, decision.final.value, decision.reason)
        return done

    async def _contact_finished(
        self, cid: str, n: str, contact: dict[str, str], outcome: str, reason: str
    ) -> None:
        """Emit ``campaign.contact_finished`` (once per contact; a failure is logged)."""
        if self.events is None:
            return
        data = {
            "campaign_id": cid,
            "contact_id": n,
            "outcome": outcome,
            "reason": reason,
            "attempts": int(contact.get("attempts") or 0),
            "phone_masked": contact.get("phone_masked", ""),
        }
        try:
            await self.events.emit_once("campaign.contact_finished", f"{cid}:{n}", data)
        except StoreError as exc:
            log.error("campaign.contact_finished for %s/%s not sent: %s", cid, n, exc)

    async def campaign_finished(self, cid: str, status: str) -> None:
        """Emit ``campaign.finished`` (once per campaign; a failure is logged)."""
        if self.events is None:
            return
        try:
            campaign = await self.store.get(cid)
            stats = await self.stats(cid)
            data = {
                "campaign_id": cid,
                "name": campaign.spec.name,
                "status": status,
                "contacts": stats.get("contacts", 0),
                "attempts": stats.get("attempts", 0),
                "outcomes": stats.get("outcomes", {}),
            }
            await self.events.emit_once("campaign.finished", cid, data)
        except (StoreError, CampaignNotFound) as exc:
            log.error("campaign.finished for %s not sent: %s", cid, exc)


def _variables(contact: dict[str, str]) -> dict[str, str]:
    try:
        data = orjson.loads(contact.get("variables") or "{}")
    except orjson.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


_CONTACT_INT = ("attempts", "due_at_ms", "done_at_ms", "row", "created_at_ms")


def public_contact(raw: dict[str, str]) -> dict[str, Any]:
    """A contact hash for the API: masked number, no raw number or hash."""
    out: dict[str, Any] = {
        "id": raw.get("id"),
        "phone_masked": raw.get("phone_masked"),
        "timezone": raw.get("tz"),
        "state": raw.get("state"),
        "outcome": raw.get("outcome") or None,
        "reason": raw.get("reason") or None,
        "variables": _variables(raw),
        "attempt_outcomes": {k[2:]: int(v) for k, v in raw.items() if k.startswith("o:")},
    }
    for name in _CONTACT_INT:
        value = raw.get(name)
        out[name] = int(value) if value not in (None, "") else None
    return out


_ATTEMPT_FIELDS = (
    "id",
    "number",
    "state",
    "outcome",
    "decision",
    "call_sid",
    "carrier_status",
    "answered_by",
    "result",
    "result_detail",
    "error",
    "owner",
)
_ATTEMPT_TIMES = (
    "due_at_ms",
    "leased_at_ms",
    "dialed_at_ms",
    "placed_at_ms",
    "ringing_at_ms",
    "answered_at_ms",
    "amd_at_ms",
    "voicemail_at_ms",
    "ended_at_ms",
    "retry_at_ms",
)


def public_attempt(raw: dict[str, str]) -> dict[str, Any]:
    """An attempt hash for the API (times as int ms, absent ones None)."""
    out: dict[str, Any] = {name: raw.get(name) or None for name in _ATTEMPT_FIELDS}
    if out["number"] is not None:
        out["number"] = int(out["number"])
    for name in _ATTEMPT_TIMES:
        value = raw.get(name)
        out[name] = int(float(value)) if value not in (None, "") else None
    return out
