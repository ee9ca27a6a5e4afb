"""Carrier-facing endpoints: the voice webhook, status callbacks and the media WebSocket.

Every webhook is checked against ``X-Twilio-Signature`` computed over the URL rebuilt from
``Settings.public_base_url`` (never the Host header a proxy forwards) plus the form fields
(docs/protocols.md §2 "Request validation"). A bad signature is 403 and nothing is stored.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response, WebSocket

from app import metrics
from app.api.deps import ServicesDep, get_services
from app.call.bridge import POLICY_VIOLATION, CallBridge
from app.carrier.twiml import connect_stream, hangup_twiml, valid_stream_upgrade
from app.dialer.runtime import runtime_of
from app.errors import DialerError, StoreError
from app.events import call_event
from app.phone import is_e164, mask, normalize
from app.services import Services
from app.store.tokens import IssuedToken, StreamContext
from flows import RoutingDecision

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
TWIML = "application/xml"


async def signed_form(request: Request) -> dict[str, str]:
    """The POSTed form fields after the signature check. Raises 403 on a bad signature."""
    services = get_services(request)
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    settings = services.settings
    if settings.validate_signatures:
        url = settings.public_url(request.url.path)
        if request.url.query:
            url += "?" + request.url.query
        signature = request.headers.get("X-Twilio-Signature")
        if not services.signatures.valid(url, params, signature):
            metrics.WEBHOOKS.labels(request.url.path, "forbidden").inc()
            log.warning("rejected %s: bad or missing X-Twilio-Signature", request.url.path)
            raise HTTPException(403, "invalid X-Twilio-Signature")
    return params


SignedForm = Annotated[dict[str, str], Depends(signed_form)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Missing or malformed Twilio fields"},
    403: {"description": "Missing or invalid X-Twilio-Signature"},
    413: {"description": "Body over max_webhook_body_bytes (refused before parsing)"},
}


def _call_sid(params: dict[str, str]) -> str:
    sid = params.get("CallSid", "")
    if not _CALL_SID.match(sid):
        raise HTTPException(400, "CallSid missing or malformed")
    return sid


@router.post(
    "/voice",
    response_class=Response,
    summary="Voice webhook: answer a call with <Connect><Stream>",
    responses={
        200: {"content": {TWIML: {}}, "description": "TwiML connecting the call's media stream"},
        409: {"description": "The call already has a media stream or has ended (a replay)"},
        503: {"description": "Shutting down: Twilio will try the fallback URL"},
        **_ERRORS,
    },
)
async def voice(params: SignedForm, services: ServicesDep, request: Request) -> Response:
    """Route the call to a flow by the called number, record the routing decision and
    answer TwiML with a one-time stream token as the only ``<Parameter>``.

    The server keeps the call's context (flow, numbers, direction, a campaign contact's
    variables) with the token; the media stream takes it from there. Idempotent per
    ``CallSid``: a repeat while the token is unredeemed gets the same TwiML and changes
    nothing; once the call has a stream or has ended a repeat is 409, mints nothing
    and leaves the record as it was.

    An answered campaign call (``Direction=outbound-api``, ``?attempt=`` in the URL the
    dialer gave) gets its campaign's flow and the contact's variables; one whose attempt
    already finished is hung up."""
    call_sid = _call_sid(params)
    if not services.accepting:
        raise HTTPException(503, "shutting down")
    settings = services.settings
    try:
        to_number = normalize(params.get("To", ""))
        from_number = normalize(params.get("From", "")) if params.get("From") else ""
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        existing = await services.store.get_call(call_sid)
        if existing is not None:
            return await _answer_again(services, call_sid, existing)
    except StoreError as exc:
        log.error("voice webhook: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    direction = (
        "outbound" if params.get("Direction", "inbound").startswith("outbound") else "inbound"
    )
    flow, decision = services.flows.route(to_number)
    extra: dict[str, str] = {}
    variables: dict[str, str] = {}
    campaign = ""
    runtime = runtime_of(request.app.state)
    if direction == "outbound" and runtime is not None:
        try:
            answer = await runtime.campaigns.answer(call_sid, request.query_params.get("attempt"))
        except (StoreError, DialerError) as exc:
            log.error("voice webhook: campaign lookup failed: %s", exc)
            raise HTTPException(503, "storage unavailable") from None
        if answer is not None:
            campaign_flow = services.flows.get(answer.flow)
            if not answer.active or campaign_flow is None:
                log.warning(
                    "outbound call %s: attempt %s is over; hanging up", call_sid, answer.attempt
                )
                return Response(hangup_twiml(), media_type=TWIML)
            flow = campaign_flow
            decision = RoutingDecision(flow.name, "campaign", to_number)
            campaign, variables = answer.campaign, answer.variables
            extra = {"campaign": campaign}
    now_ms = int(time.time() * 1000)
    context = StreamContext(
        call_sid=call_sid,
        flow=flow.name,
        direction=direction,
        from_number=from_number if is_e164(from_number) else "",
        to_number=to_number,
        variables=dict(variables),
        campaign=campaign,
    )
    try:
        created = await services.store.create_call(
            call_sid=call_sid,
            direction=direction,
            from_number=from_number,
            to_number=to_number,
            flow=flow.name,
            status=params.get("CallStatus", "ringing"),
            created_at_ms=now_ms,
            extra=extra,
            only_new=True,
        )
        if not created:  # a concurrent duplicate won the claim
            record = await services.store.get_call(call_sid) or {}
            return await _answer_again(services, call_sid, record)
        await services.store.append_routing(
            call_sid,
            flow=flow.name,
            reason=decision.reason,
            target=f"flow:{flow.name}",
            at_ms=now_ms,
        )
        issued = await services.tokens.issue(context, settings.stream_token_ttl_s)
    except StoreError as exc:
        log.error("voice webhook: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    if issued is None:
        return _replayed(call_sid, "already has a media stream")
    metrics.WEBHOOKS.labels("/twilio/voice", "ok").inc()
    log.info(
        "call %s from %s to %s routed to flow %s (%s)",
        call_sid,
        mask(from_number),
        mask(to_number),
        flow.name,
        decision.reason,
    )
    return _stream_twiml(services, issued)


def _stream_twiml(services: Services, issued: IssuedToken) -> Response:
    settings = services.settings
    twiml = connect_stream(
        settings.media_stream_url,
        {"token": issued.token},
        status_callback=settings.public_url("/twilio/stream-status"),
    )
    return Response(twiml, media_type=TWIML)


def _replayed(call_sid: str, why: str) -> Response:
    metrics.WEBHOOKS.labels("/twilio/voice", "replay").inc()
    log.warning("voice webhook for call %s refused: it %s (a replay?)", call_sid, why)
    return Response(
        orjson.dumps({"detail": f"call {why}", "code": "conflict"}),
        status_code=409,
        media_type="application/json",
    )


async def _answer_again(services: Services, call_sid: str, record: dict[str, Any]) -> Response:
    """A voice webhook for a call that is already recorded: the same TwiML while its
    token waits to be redeemed, else 409. Nothing is written. Raises ``StoreError``."""
    if record.get("status") == "ended" or record.get("ended_at_ms"):
        return _replayed(call_sid, "has ended")
    issued = await services.tokens.pending(call_sid)
    if issued is None:
        return _replayed(call_sid, "already has a media stream")
    metrics.WEBHOOKS.labels("/twilio/voice", "repeat").inc()
    log.info("voice webhook repeated for call %s: same answer", call_sid)
    return _stream_twiml(services, issued)


@router.post(
    "/status",
    status_code=204,
    summary="Call status callback (initiated, ringing, answered, completed, …)",
    responses=_ERRORS,
)
async def call_status(params: SignedForm, services: ServicesDep, request: Request) -> Response:
    """Record a call status change. Unknown calls are answered 204 and logged, so Twilio
    does not retry; a repeated callback is recorded once. A campaign call's status also
    moves its attempt on (``Campaigns.on_status``, idempotent)."""
    call_sid = _call_sid(params)
    status = params.get("CallStatus", "")
    if not status:
        raise HTTPException(400, "CallStatus missing")
    runtime = runtime_of(request.app.state)
    if runtime is not None:
        try:
            await runtime.campaigns.on_status(params, request.query_params.get("attempt"))
        except StoreError as exc:
            log.error("status callback: store unavailable: %s", exc)
            raise HTTPException(503, "storage unavailable") from None
        except DialerError as exc:
            log.warning("status %s of call %s: %s", status, call_sid, exc)
    await _record_status(services, call_sid, status, params)
    return Response(status_code=204)


@router.post(
    "/amd",
    status_code=204,
    summary="Async answering machine detection callback (AnsweredBy)",
    responses=_ERRORS,
)
async def amd_status(params: SignedForm, services: ServicesDep, request: Request) -> Response:
    """Apply a campaign's voicemail policy to an AMD verdict (leave the message after
    the beep, or hang up). Unknown calls are answered 204 and logged."""
    call_sid = _call_sid(params)
    answered_by = params.get("AnsweredBy", "")
    if not answered_by:
        raise HTTPException(400, "AnsweredBy missing")
    runtime = runtime_of(request.app.state)
    handled = False
    if runtime is not None:
        try:
            handled = await runtime.campaigns.on_amd(params, request.query_params.get("attempt"))
        except StoreError as exc:
            log.error("AMD callback: store unavailable: %s", exc)
            raise HTTPException(503, "storage unavailable") from None
        except DialerError as exc:
            log.warning("AMD %s of call %s: %s", answered_by, call_sid, exc)
    if not handled:
        log.info("AMD %s for unknown call %s ignored", answered_by, call_sid)
        metrics.WEBHOOKS.labels("amd", "unknown_call").inc()
        return Response(status_code=204)
    await _record_status(services, call_sid, "amd", params)
    return Response(status_code=204)


@router.post(
    "/stream-status",
    status_code=204,
    summary="Media stream status callback (stream-started, stream-stopped, stream-error)",
    responses=_ERRORS,
)
async def stream_status(params: SignedForm, services: ServicesDep) -> Response:
    call_sid = _call_sid(params)
    event = params.get("StreamEvent", "")
    if not event:
        raise HTTPException(400, "StreamEvent missing")
    await _record_status(services, call_sid, event, params)
    return Response(status_code=204)


@router.post(
    "/recording-status",
    status_code=204,
    summary="Recording status callback (in-progress, completed, absent) of a Twilio recording",
    responses=_ERRORS,
)
async def recording_status(params: SignedForm, services: ServicesDep) -> Response:
    """Keep where Twilio's dual-channel recording of the call is (``RecordingSid``,
    ``RecordingUrl``, status, duration) on the call record and as a ``recording_status``
    call event; the audio stays with Twilio. Unknown calls are answered 204 and logged."""
    call_sid = _call_sid(params)
    status = params.get("RecordingStatus", "")
    rec_sid = params.get("RecordingSid", "")
    if not status or not re.fullmatch(r"RE[0-9a-fA-F]{32}", rec_sid):
        raise HTTPException(400, "RecordingStatus or RecordingSid missing or malformed")
    store = services.store
    try:
        record = await store.get_call(call_sid)
        if record is None:
            log.info("recording status %s for unknown call %s ignored", status, call_sid)
            return Response(status_code=204)
        fields = {
            "recording_sid": rec_sid,
            "recording_status": status[:32],
            "recording_url": params.get("RecordingUrl", "")[:500],
            "recording_channels": params.get("RecordingChannels", "")[:4],
            "recording_duration_s": params.get("RecordingDuration", "")[:10],
        }
        await store.update_call(call_sid, **{k: v for k, v in fields.items() if v})
        at = int(time.time() * 1000) - int(record.get("created_at_ms") or 0)
        event = {"status": fields["recording_status"], "sid": rec_sid}
        await store.append_event(call_sid, kind="recording_status", fields=event, at_ms=max(0, at))
    except StoreError as exc:
        log.error("recording status callback: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    return Response(status_code=204)


def _callback_ms(params: dict[str, str]) -> int | None:
    """The callback's ``Timestamp`` (RFC 2822, as Twilio sends it) in epoch ms, or None."""
    raw = params.get("Timestamp", "")
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _sequence(params: dict[str, str]) -> int | None:
    raw = params.get("SequenceNumber", "")
    return int(raw) if raw.isdigit() and len(raw) <= 9 else None


async def _record_status(
    services: Services, call_sid: str, status: str, params: dict[str, str]
) -> None:
    """Append the callback to the call's status stream and, for call statuses, apply it
    in order: by ``SequenceNumber`` (else ``Timestamp``); a terminal status is final."""
    store = services.store
    try:
        if await store.get_call(call_sid) is None:
            log.info("status %s for unknown call %s ignored", status, call_sid)
            metrics.WEBHOOKS.labels("status", "unknown_call").inc()
            return
        seq = params.get("SequenceNumber", "")
        dedupe = services.keys.call(call_sid) + f":cb:{status}:{seq[:16]}"
        if not await services.redis.set(dedupe, "1", nx=True, ex=86400):
            metrics.WEBHOOKS.labels("status", "duplicate").inc()
            return
        extra = {
            k: params[k]
            for k in ("CallDuration", "AnsweredBy", "StreamError", "SipResponseCode")
            if k in params
        }
        now = int(time.time() * 1000)
        await store.append_status(call_sid, status=status, at_ms=now, extra=extra)
        if not status.startswith("stream-") and status != "amd":
            applied = await store.apply_carrier_status(
                call_sid, status, seq=_sequence(params), at_ms=_callback_ms(params)
            )
            if applied == 0:
                metrics.WEBHOOKS.labels("status", "stale").inc()
                log.info(
                    "status %s of call %s is older than the one applied; kept", status, call_sid
                )
                return
    except StoreError as exc:
        log.error("status callback: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    metrics.WEBHOOKS.labels("status", "ok").inc()
    if status in _FINAL_STATUSES:
        await _ended_without_stream(services, call_sid, status)


#: Call statuses after which nothing more happens on the call.
_FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


async def _ended_without_stream(services: Services, call_sid: str, status: str) -> None:
    """``call.ended`` for a call that ended without a media stream (busy, no answer, an
    outbound call hung up before its stream opened): no bridge ran, so none will send
    it. A call whose stream token was redeemed has its bridge send it (with the end
    reason)."""
    try:
        issued = await services.redis.exists(services.keys.call_token(call_sid))
        if issued and await services.tokens.pending(call_sid) is None:
            return  # the stream token was redeemed: the call's bridge reports its end
        await call_event(services, "call.ended", call_sid, reason=status, outcome="no_stream")
    except StoreError as exc:
        log.error("call.ended event for %s not sent: %s", call_sid, exc)


@router.websocket("/media")
async def media(ws: WebSocket) -> None:
    """Twilio Media Streams socket. The upgrade's ``X-Twilio-Signature`` (over the
    ``wss://`` stream URL) is checked before it is accepted: a bad one is refused with
    HTTP 403 and nothing is read. Then nothing is bridged before the ``start`` message's
    one-time token checks out; otherwise the socket closes with 1008 (policy violation)."""
    services = get_services(ws)
    settings = services.settings
    if settings.validate_signatures and settings.validate_ws_signature:
        signature = ws.headers.get("X-Twilio-Signature")
        if not valid_stream_upgrade(services.signatures, settings.media_stream_url, signature):
            metrics.STREAM_REJECTED.labels("signature").inc()
            log.warning("media WebSocket upgrade refused: bad or missing X-Twilio-Signature")
            await ws.close(code=POLICY_VIOLATION)  # before accept: HTTP 403
            return
    await ws.accept()
    if not services.accepting:
        await ws.close(code=1013, reason="shutting down")
        return
    await CallBridge(services.call_deps, ws).run()
