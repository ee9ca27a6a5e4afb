"""Warm transfer webhooks: the ``<Number url>`` whisper, its ``<Gather>`` answer, and the
``<Dial action>`` callback (``app.carrier.warm``; docs/protocols.md §2 "Warm transfer").

Each is signed and validated like every Twilio webhook (``signed_form``). The whisper
requests come from the target's leg (``CallSid`` is that leg's, ``ParentCallSid`` the
caller's); the ``<Dial action>`` request from the caller's leg (``CallSid``) with
``DialCallStatus``, ``DialCallSid`` and ``DialCallDuration``. Every step is a routing
decision on the caller's call (``warm transfer: answered``, ``briefed``, ``declined``,
``connected``, ``no answer``, ``busy``, ``failed``, ``returned to agent``, ``completed``).
A fault never leaves the caller in silence: a lost hand-off is answered with a spoken
apology.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from fastapi import APIRouter, HTTPException, Response

from app import metrics
from app.api.deps import ServicesDep
from app.api.routes.twilio import _ERRORS, TWIML, SignedForm, _call_sid
from app.carrier import warm
from app.carrier.twiml import connect_stream, say_then
from app.errors import StoreError
from app.events import call_event
from app.services import Services
from app.store.backends import now_ms
from app.store.handoffs import Handoffs, HandoffState

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
#: Said to the caller when the hand-off of their transfer is gone (expired or lost).
LOST_LINE = "Sorry, we could not complete the transfer. Please call again."


def _handoffs(services: Services) -> Handoffs:
    return Handoffs(services.redis, services.keys, services.settings.transfer_handoff_ttl_s)


def _parent(params: dict[str, str]) -> str:
    sid = params.get("ParentCallSid", "")
    if not _SID.match(sid):
        raise HTTPException(400, "ParentCallSid missing or malformed")
    return sid


def _twiml(text: str) -> Response:
    return Response(text, media_type=TWIML)


async def _step(services: Services, state: HandoffState, step: str) -> None:
    """A routing decision on the caller's call: ``warm transfer: {step}``."""
    h = state.handoff
    await services.store.append_routing(
        h.context.call_sid,
        flow=h.context.flow,
        reason=f"warm transfer: {step}",
        target=h.target,
        at_ms=now_ms(),
    )


@router.post(
    "/whisper",
    response_class=Response,
    summary="<Number url> of a warm transfer: the briefing for whoever answers",
    responses={200: {"content": {TWIML: {}}}, **_ERRORS},
)
async def whisper(params: SignedForm, services: ServicesDep) -> Response:
    """Runs on the target's leg once they answer (the caller still hears ringback): the
    briefing and the decline prompt in ``<Gather numDigits=1>``. An unknown transfer
    hangs the target's leg up; the caller's ``<Dial action>`` follows."""
    parent = _parent(params)
    handoffs = _handoffs(services)
    try:
        state = await handoffs.get(parent)
        if state is None:
            log.warning("whisper for call %s without a warm transfer: hanging the leg up", parent)
            return _twiml(warm.hangup())
        if await handoffs.mark(parent, "answered"):
            await _step(services, state, "answered")
            at = now_ms() - state.handoff.started_wall_ms
            await services.store.append_event(
                parent,
                kind="transfer_briefing",
                fields={"text": state.handoff.briefing},
                at_ms=max(0, at),
            )
    except StoreError as exc:
        log.error("whisper: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    metrics.WEBHOOKS.labels("/twilio/whisper", "ok").inc()
    settings = services.settings
    return _twiml(
        warm.whisper(
            state.handoff.briefing,
            state.handoff.decline_key,
            action_url=settings.public_url("/twilio/whisper-key"),
            timeout_s=settings.transfer_decline_wait_s,
        )
    )


@router.post(
    "/whisper-key",
    response_class=Response,
    summary="<Gather action> of the whisper: decline or connect",
    responses={200: {"content": {TWIML: {}}}, **_ERRORS},
)
async def whisper_key(params: SignedForm, services: ServicesDep) -> Response:
    """The briefing was played (``Digits``: the key pressed, empty when none): the
    decline key hangs the target's leg up, anything else connects the two parties."""
    parent = _parent(params)
    handoffs = _handoffs(services)
    digits = params.get("Digits", "")
    try:
        state = await handoffs.get(parent)
        if state is None:
            return _twiml(warm.hangup())
        if await handoffs.mark(parent, "briefed"):
            await _step(services, state, "briefed")
        if digits and digits == state.handoff.decline_key:
            if await handoffs.mark(parent, "declined"):
                await _step(services, state, f"declined (pressed {digits})")
            return _twiml(warm.hangup())
        if await handoffs.mark(parent, "connected"):
            await _step(services, state, "connected")
    except StoreError as exc:
        log.error("whisper key: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None
    return _twiml(warm.connect_now())


@router.post(
    "/dial-action",
    response_class=Response,
    summary="<Dial action> of a warm transfer: end the call, or bring the caller back",
    responses={200: {"content": {TWIML: {}}}, **_ERRORS},
)
async def dial_action(params: SignedForm, services: ServicesDep) -> Response:
    """The ``<Dial>`` is over. Connected and finished: the call ends (``<Hangup/>``, the
    record closed, ``call.ended``). No answer, busy, failed or declined: a new
    ``<Connect><Stream>`` for the same call, whose session replays the conversation and
    says what happened. A retried callback gets the first one's answer."""
    call_sid = _call_sid(params)
    status = params.get("DialCallStatus", "")
    if not status:
        raise HTTPException(400, "DialCallStatus missing")
    handoffs = _handoffs(services)
    try:
        state = await handoffs.get(call_sid)
        if state is None:
            log.error("<Dial action> for call %s without a warm transfer", call_sid)
            return _twiml(say_then(LOST_LINE))
        outcome = warm.outcome_of(
            status, declined="declined" in state.steps, connected="connected" in state.steps
        )
        if not await handoffs.settle(call_sid, outcome):
            return await _answer_again(services, call_sid)
        if outcome == "connected":
            return await _completed(services, state, params)
        return await _return_to_agent(services, state, outcome)
    except StoreError as exc:
        log.error("<Dial action>: store unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None


async def _completed(services: Services, state: HandoffState, params: dict[str, str]) -> Response:
    """The target took the call and it is over: close the record."""
    call_sid = state.handoff.context.call_sid
    seconds = params.get("DialCallDuration", "0")
    seconds = seconds if seconds.isdigit() else "0"
    await _step(services, state, f"completed (talked {seconds} s)")
    now = now_ms()
    await services.store.update_call(
        call_sid, status="ended", ended_at_ms=now, end_reason="transfer: connected (warm)"
    )
    reason = state.handoff.reason
    await call_event(
        services, "transfer.completed", call_sid, to=state.handoff.target, reason=reason
    )
    await call_event(
        services, "call.ended", call_sid, reason="transfer: connected (warm)", outcome="completed"
    )
    metrics.WEBHOOKS.labels("/twilio/dial-action", "completed").inc()
    return _twiml(warm.hangup())


async def _return_to_agent(services: Services, state: HandoffState, outcome: str) -> Response:
    """Nobody took the call: a fresh one-time token bound to the hand-off, and a new
    media stream for the same call."""
    h = state.handoff
    if outcome != "declined":  # a decline was recorded when the key was pressed
        await _step(services, state, outcome.replace("_", " "))
    settings = services.settings
    context = replace(h.context, handoff=True)
    token = await services.tokens.issue_return(context, settings.stream_token_ttl_s)
    await _handoffs(services).set_return_token(h.context.call_sid, token)
    await _step(services, state, "returned to agent")
    metrics.WEBHOOKS.labels("/twilio/dial-action", "returned").inc()
    log.info("warm transfer of %s: %s; back to the agent", h.context.call_sid, outcome)
    return _stream(services, token)


def _stream(services: Services, token: str) -> Response:
    settings = services.settings
    return _twiml(
        connect_stream(
            settings.media_stream_url,
            {"token": token},
            status_callback=settings.public_url("/twilio/stream-status"),
        )
    )


async def _answer_again(services: Services, call_sid: str) -> Response:
    """A repeated ``<Dial action>``: the same stream while its token is unredeemed, else
    the end of the call."""
    state = await _handoffs(services).get(call_sid)
    token = state.return_token if state is not None else ""
    if token and await services.redis.exists(services.keys.token(token)):
        return _stream(services, token)
    return _twiml(warm.hangup())
