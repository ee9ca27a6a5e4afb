"""Carrier-facing endpoints: the voice webhook, status callbacks and the media WebSocket.

Every webhook is checked against ``X-Twilio-Signature`` computed over the URL rebuilt from
``Settings.public_base_url`` (never the Host header a proxy forwards) plus the form fields
(protocols.md §2 "Request validation"). A bad signature is 403 and nothing is stored.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, WebSocket

from app import metrics
from app.api.deps import ServicesDep, get_services
from app.call.bridge import POLICY_VIOLATION, CallBridge
from app.carrier.twiml import connect_stream, hangup_twiml
from app.deps import Services
from app.dialer.runtime import runtime_of
from app.dialer.variables import to_parameters
from app.errors import DialerError, StoreError
from app.phone import is_e164, mask, normalize
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
        503: {"description": "Shutting down: Twilio will try the fallback URL"},
        **_ERRORS,
    },
)
async def voice(params: SignedForm, services: ServicesDep, request: Request) -> Response:
    """Route the call to a flow by the called number, record the routing decision and
    answer TwiML with a one-time stream token as a ``<Parameter>``.

    An answered campaign call (``Direction=outbound-api``, ``?attempt=`` in the URL the
    dialer gave) gets its campaign's flow and the contact's variables as ``var_*``
    parameters; one whose attempt already finished is hung up."""
    call_sid = _call_sid(params)
    if not services.accepting:
        raise HTTPException(503, "shutting down")
    settings = services.settings
    try:
        to_number = normalize(params.get("To", ""))
        from_number = normalize(params.get("From", "")) if params.get("From") else ""
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    direction = (
        "outbound" if params.get("Direction", "inbound").startswith("outbound") else "inbound"
    )
    flow, decision = services.flows.route(to_number)
    extra: dict[str, str] = {}
    variables: dict[str, str] = {}
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
            extra, variables = {"campaign": answer.campaign}, answer.variables
    now_ms = int(time.time() * 1000)
    try:
        await services.store.create_call(
            call_sid=call_sid,
            direction=direction,
            from_number=from_number,
            to_number=to_number,
            flow=flow.name,
            status=params.get("CallStatus", "ringing"),
            created_at_ms=now_ms,
            extra=extra,
        )
        await services.store.append_routing(
            call_sid,
            flow=flow.name,
            reason=decision.reason,
            target=f"flow:{flow.name}",
            at_ms=now_ms,
        )
        token = await services.tokens.issue(call_sid, settings.stream_token_ttl_s)
    except StoreError as exc:
        log.error("voice webhook: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    twiml = connect_stream(
        settings.media_stream_url,
        {
            "token": token,
            "flow": flow.name,
            "direction": direction,
            "from": from_number if is_e164(from_number) else "",
            "to": to_number,
            **to_parameters(variables),
        },
        status_callback=settings.public_url("/twilio/stream-status"),
    )
    metrics.WEBHOOKS.labels("/twilio/voice", "ok").inc()
    log.info(
        "call %s from %s to %s routed to flow %s (%s)",
        call_sid,
        mask(from_number),
        mask(to_number),
        flow.name,
        decision.reason,
    )
    return Response(twiml, media_type=TWIML)


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


async def _record_status(
    services: Services, call_sid: str, status: str, params: dict[str, str]
) -> None:
    store = services.store
    try:
        if await store.get_call(call_sid) is None:
            log.info("status %s for unknown call %s ignored", status, call_sid)
            metrics.WEBHOOKS.labels("status", "unknown_call").inc()
            return
        seq = params.get("SequenceNumber", "")
        dedupe = services.keys.call(call_sid) + f":cb:{status}:{seq}"
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
            await store.update_call(call_sid, carrier_status=status)
    except StoreError as exc:
        log.error("status callback: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    metrics.WEBHOOKS.labels("status", "ok").inc()


@router.websocket("/media")
async def media(ws: WebSocket) -> None:
    """Twilio Media Streams socket: nothing is bridged before the ``start`` message's
    one-time token checks out; otherwise the socket closes with 1008 (policy violation)."""
    services = get_services(ws)
    settings = services.settings
    await ws.accept()
    if not services.accepting:
        await ws.close(code=1013, reason="shutting down")
        return
    if settings.validate_signatures and settings.validate_ws_signature:
        signature = ws.headers.get("X-Twilio-Signature")
        if not services.signatures.valid(settings.media_stream_url, {}, signature):
            metrics.STREAM_REJECTED.labels("signature").inc()
            await ws.close(code=POLICY_VIOLATION, reason="invalid signature")
            return
    await CallBridge(services, ws).run()
