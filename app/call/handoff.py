"""A warm transfer's two ends as the bridge runs them (``app.carrier.warm``): leaving the
media stream for ``<Dial action><Number url>``, and resuming when the caller is back.

The session decides (``app.call.control``: the ``Transfer`` action with ``mode="warm"``
carries the briefing and the conversation so far); these only write and read the
hand-off (``app.store.handoffs``) and call the carrier.
"""

from __future__ import annotations

import logging

from app.call import actions as act
from app.call.deps import CallDeps
from app.call.session import CallSession
from app.carrier.warm import warm_dial
from app.errors import CarrierRestError, StoreError, TransferRefused
from app.phone import mask
from app.store.backends import now_ms
from app.store.handoffs import Handoff, Handoffs
from app.store.tokens import StreamContext
from tools.base import CallInfo

log = logging.getLogger(__name__)


async def start(
    deps: CallDeps,
    info: CallInfo | None,
    context: StreamContext | None,
    action: act.Transfer,
    started_wall_ms: int,
) -> None:
    """Keep the hand-off (what the whisper and ``<Dial action>`` callbacks need), record
    the dialling as a routing decision and the call as ``transferring``, then move it to
    ``<Dial action=… timeout=…><Number url=…>`` through the REST API. ``info`` and
    ``context``: the bridged call's. Raises ``CarrierRestError`` (the store or the carrier
    failed) and ``TransferRefused`` (the guard refused the target)."""
    assert info is not None and context is not None, "only for a bridged call"
    settings, store = deps.settings, deps.store
    timeout_s = action.ring_timeout_s or settings.transfer_ring_timeout_s
    twiml = warm_dial(
        action.to_number,
        action_url=settings.public_url("/twilio/dial-action"),
        whisper_url=settings.public_url("/twilio/whisper"),
        timeout_s=timeout_s,
    )
    record = Handoff(
        context=context,
        target=action.to_number,
        reason=action.reason,
        briefing=action.briefing,
        decline_key=action.decline_key,
        entries=action.entries,
        offset_ms=action.offset_ms,
        started_wall_ms=started_wall_ms,
    )
    why = await deps.calls_api.refusal(action.to_number)
    if why is not None:  # refused before anything is written (the REST client checks again)
        raise TransferRefused(f"warm transfer to {mask(action.to_number)} refused: {why}")
    try:
        await Handoffs.of(store, settings.transfer_handoff_ttl_s).put(record)
        await store.append_routing(
            context.call_sid,
            flow=info.flow,
            reason=f"warm transfer: dialing (rings {timeout_s} s)",
            target=action.to_number,
            at_ms=now_ms(),
        )
        await store.update_call(context.call_sid, status="transferring")
    except StoreError as exc:
        raise CarrierRestError(f"warm transfer not started: {exc}") from exc
    await deps.calls_api.transfer(context.call_sid, action.to_number, twiml=twiml)


async def resume(deps: CallDeps, session: CallSession, context: StreamContext) -> int:
    """When ``context`` says the caller is back from a warm transfer: seed ``session``
    with the conversation so far and the flow's line for what happened
    (``transfer.lines``). Returns the epoch ms the call's first stream started (now for
    a first stream, or when the hand-off is gone: then the call goes on as a fresh
    conversation with the flow's greeting)."""
    if not context.handoff:
        return now_ms()
    handoffs = Handoffs.of(deps.store, deps.settings.transfer_handoff_ttl_s)
    try:
        state = await handoffs.get(session.call_sid)
    except StoreError as exc:
        log.warning("warm transfer hand-off unreadable: %s", exc)
        state = None
    if state is None:
        return now_ms()
    lines = session.flow.transfer.lines
    line = {"busy": lines.busy, "declined": lines.declined, "failed": lines.failed}.get(
        state.outcome, lines.no_answer
    )
    started = state.handoff.started_wall_ms or now_ms()
    # The new stream's offsets go on from where the first one left off: never before it,
    # even when the wall clock since its start says less (its last line ran past it).
    base = max(now_ms() - started, state.handoff.offset_ms)
    session.resume(state.handoff.entries, line, base)
    return started
