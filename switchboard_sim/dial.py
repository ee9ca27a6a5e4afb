"""The far end of a ``<Dial>``: the simulator plays the transfer target's side.

When a live call is updated with a ``<Dial action=…>`` (a warm transfer,
docs/protocols.md §2 "Warm transfer") the simulator rings the target by its rule
(:class:`TargetRule`, one per number or SIP URI) as Twilio would:

- ``busy``: the target's line is busy; ``no-answer``: it rings the ``<Dial timeout>``
  (seconds of wall time) and nobody picks up;
- ``answer``: after ``ring_ms`` the target answers; the ``<Number url>`` (or ``<Sip
  url>``) TwiML is fetched for the target's leg (signed, ``CallSid`` the new leg's,
  ``ParentCallSid`` the caller's) and its ``<Say>`` texts are what the target *heard*;
  a ``<Gather>`` there gets no key within its ``timeout`` (then its ``action`` is posted
  with empty ``Digits`` when ``actionOnEmptyResult`` is set) and the parties are
  connected for ``talk_ms``; ``decline``: as ``answer`` but the target presses ``key``
  once the briefing has played, and the answer's ``<Hangup>`` ends their leg.

Then the ``<Dial action>`` is posted on the caller's leg with ``DialCallStatus``
(``completed``, ``busy``, ``no-answer``), ``DialCallSid`` and ``DialCallDuration`` (the
target's leg, whole seconds), and its TwiML decides what the caller gets next
(:class:`DialRecord` keeps all of it).

Sources: Twilio "TwiML Voice: <Dial>" (``action``, ``timeout``, the action request's
parameters), "<Number>"/"<Sip>" (``url``) and "<Gather>".
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import httpx

from switchboard_sim.callbacks import Webhooks, call_params
from switchboard_sim.calls import DialRecord, LiveCall, TargetRule, new_call_sid
from switchboard_sim.twiml import DialVerb, has_hangup, parse_gather

__all__ = ["DialRecord", "TargetRule", "play_dial"]


def _leg_params(call: LiveCall, leg_sid: str, target: str) -> dict[str, str]:
    """The parameters of a request about the target's leg (``Direction=outbound-dial``,
    ``ParentCallSid`` the caller's call)."""
    params = call_params(call, "in-progress")
    params.update(
        {
            "CallSid": leg_sid,
            "ParentCallSid": call.sid,
            "Direction": "outbound-dial",
            "To": target,
            "Called": target,
            "From": call.from_number,
            "Caller": call.from_number,
        }
    )
    return params


async def play_dial(
    webhooks: Webhooks,
    http: httpx.AsyncClient,
    call: LiveCall,
    dial: DialVerb,
    rule: TargetRule,
) -> DialRecord:
    """Ring ``dial.target`` by ``rule``, run its whisper, post the ``<Dial action>``.
    Never raises: failures land in ``DialRecord.errors``."""
    rec = DialRecord(dial.target, dial.noun, rule, dial.timeout_s)
    rec.dial_call_sid = new_call_sid()
    loop = asyncio.get_running_loop()
    answered_at: float | None = None
    if rule.kind == "busy":
        rec.dial_call_status = "busy"
    elif rule.kind == "no-answer" or rule.ring_ms >= dial.timeout_s * 1000:
        await asyncio.sleep(dial.timeout_s)
        rec.dial_call_status = "no-answer"
    else:
        await asyncio.sleep(rule.ring_ms / 1000)
        answered_at = loop.time()
        rec.dial_call_status = "completed"
        if dial.url:
            await _whisper(webhooks, http, call, dial, rule, rec)
        else:
            rec.connected = True
        if rec.connected:
            await asyncio.sleep(rule.talk_ms / 1000)
    if answered_at is not None:
        rec.dial_call_duration_s = int(loop.time() - answered_at)
    if dial.action:
        await _action(webhooks, http, call, dial.action, rec)
    return rec


async def _post(
    webhooks: Webhooks, http: httpx.AsyncClient, url: str, params: dict[str, str], rec: DialRecord
) -> str | None:
    try:
        resp = await webhooks.post(http, url, params)
    except httpx.HTTPError as exc:
        rec.errors.append(f"{url}: {exc!r}")
        return None
    rec.http_statuses[url.rsplit("/", 1)[-1].split("?")[0]] = resp.status_code
    if not 200 <= resp.status_code < 300:
        rec.errors.append(f"{url} answered HTTP {resp.status_code}")
        return None
    return resp.text


async def _whisper(
    webhooks: Webhooks,
    http: httpx.AsyncClient,
    call: LiveCall,
    dial: DialVerb,
    rule: TargetRule,
    rec: DialRecord,
) -> None:
    """The target answered: fetch and play the ``url`` TwiML on their leg."""
    assert dial.url is not None
    params = _leg_params(call, rec.dial_call_sid, dial.target)
    twiml = await _post(webhooks, http, dial.url, params, rec)
    if twiml is None:
        return
    try:
        gather = parse_gather(twiml)
        hangup = has_hangup(twiml)
    except ET.ParseError as exc:
        rec.errors.append(f"whisper TwiML unparseable: {exc}")
        return
    if gather is None:
        rec.connected = not hangup
        return
    rec.heard.extend(text for text in gather.says if text)
    if rule.kind == "decline":
        rec.pressed = rule.key
    else:
        await asyncio.sleep(gather.timeout_s)  # no key within the <Gather timeout>
    if not gather.action or not (rec.pressed or gather.action_on_empty_result):
        rec.connected = True
        return
    answer = await _post(webhooks, http, gather.action, {**params, "Digits": rec.pressed}, rec)
    try:
        rec.connected = answer is not None and not has_hangup(answer)
    except ET.ParseError as exc:
        rec.errors.append(f"<Gather action> TwiML unparseable: {exc}")


async def _action(
    webhooks: Webhooks, http: httpx.AsyncClient, call: LiveCall, url: str, rec: DialRecord
) -> None:
    """Post the ``<Dial action>`` on the caller's leg; keep its TwiML."""
    params = call_params(call, "in-progress")
    params.update(
        {
            "DialCallSid": rec.dial_call_sid,
            "DialCallStatus": rec.dial_call_status,
            "DialCallDuration": str(rec.dial_call_duration_s),
        }
    )
    rec.action_twiml = await _post(webhooks, http, url, params, rec) or ""
