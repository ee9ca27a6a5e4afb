"""Warm transfer, the pure parts: the TwiML of each step and the briefing the target hears.

A warm transfer (README "Warm transfer", docs/protocols.md §2 "Warm transfer") moves the
live call to ``<Dial action=… timeout=…><Number url=…>`` (``<Sip url=…>`` for a ``sip:``
target): the caller hears ringback while the target rings; whoever answers first runs
the ``<Number url>`` TwiML on their own leg — the briefing (``<Say>``) inside a
``<Gather numDigits=1 actionOnEmptyResult=true>`` — and is connected unless they press
the flow's decline key. When the ``<Dial>`` ends Twilio posts the ``<Dial action>``
callback (``DialCallStatus``, ``DialCallSid``, ``DialCallDuration``); when nobody took
the call Switchboard answers it with a new ``<Connect><Stream>`` and the agent is back.

Sources: Twilio "TwiML Voice: <Dial>" (``action``, ``timeout``, the action request's
``DialCallStatus``/``DialCallSid``/``DialCallDuration``), "<Number>" and "<Sip>" (``url``:
TwiML run on the called party's leg before the parties are connected), "<Gather>"
(``numDigits``, ``timeout``, ``actionOnEmptyResult``). All TwiML is built with the
``twilio`` package's classes. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from app.call.conversation import Entry
from app.phone import mask

#: What happened to a warm transfer's ``<Dial>``, as stored and spoken about.
Outcome = Literal["connected", "no_answer", "busy", "declined", "failed"]

#: ``DialCallStatus`` (Twilio "<Dial>": action request parameters) → the outcome when the
#: target did not take the call. ``completed``/``answered`` mean the target answered;
#: Switchboard then knows from the whisper callbacks whether they declined.
DIAL_STATUS_OUTCOMES: dict[str, Outcome] = {
    "no-answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "failed",
}

#: Longest briefing spoken to the target (characters): a short summary, not a transcript.
MAX_BRIEFING_CHARS = 420
_QUOTE_CHARS = 110


def is_sip(target: str) -> bool:
    """A ``sip:`` (or ``sips:``) URI target, dialled with ``<Sip>`` rather than ``<Number>``."""
    return target.lower().startswith(("sip:", "sips:"))


def warm_dial(target: str, *, action_url: str, whisper_url: str, timeout_s: int) -> str:
    """``<Response><Dial action=… method=POST timeout=…><Number url=… method=POST>target``
    ``</Number></Dial></Response>`` (``<Sip>`` for a ``sip:`` target). The caller hears
    ringback while it rings (``<Dial>``'s default)."""
    response = VoiceResponse()
    dial = Dial(action=action_url, method="POST", timeout=timeout_s)
    if is_sip(target):
        dial.sip(target, url=whisper_url, method="POST")
    else:
        dial.number(target, url=whisper_url, method="POST")
    response.append(dial)
    return str(response)


def whisper(briefing: str, decline_key: str, *, action_url: str, timeout_s: int) -> str:
    """The ``<Number url>`` answer, run on the target's leg only: the briefing and the
    decline prompt inside ``<Gather numDigits=1>``; ``actionOnEmptyResult`` makes Twilio
    post ``action_url`` with an empty ``Digits`` when no key was pressed."""
    response = VoiceResponse()
    gather = Gather(
        num_digits=1,
        timeout=timeout_s,
        action=action_url,
        method="POST",
        action_on_empty_result=True,
    )
    gather.say(briefing)
    gather.say(decline_prompt(decline_key))
    response.append(gather)
    return str(response)


def decline_prompt(decline_key: str) -> str:
    """What the target hears after the briefing."""
    return f"Press {_spoken_key(decline_key)} to decline, or stay on the line to be connected."


def _spoken_key(key: str) -> str:
    return {"*": "star", "#": "pound"}.get(key, key)


def connect_now() -> str:
    """An empty ``<Response/>``: the whisper is over, Twilio connects the two parties."""
    return str(VoiceResponse())


def hangup() -> str:
    """``<Response><Hangup/></Response>``: on the target's leg, a declined transfer."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def outcome_of(dial_call_status: str, *, declined: bool, connected: bool) -> Outcome:
    """The transfer's outcome from the ``<Dial action>`` request's ``DialCallStatus`` and
    what the whisper callbacks recorded (a decline hangs the target's leg up, which Twilio
    may report as ``completed``)."""
    if declined:
        return "declined"
    mapped = DIAL_STATUS_OUTCOMES.get(dial_call_status)
    if mapped is not None:
        return mapped
    if dial_call_status in ("completed", "answered") and connected:
        return "connected"
    return "no_answer" if dial_call_status in ("completed", "answered") else "failed"


# --- the briefing ----------------------------------------------------------------------


def briefing(
    entries: Iterable[Entry],
    *,
    caller: str,
    reason: str,
    variables: dict[str, str] | None = None,
) -> str:
    """A short spoken summary of the call so far, for the person who answers: who is
    calling, what they want and what was done. Deterministic (no model): from the
    conversation's entries (the caller's turns, the tool calls and their outputs),
    the caller's number (spoken by its last four digits) and the transfer's reason.
    At most ``MAX_BRIEFING_CHARS`` characters."""
    items = list(entries)
    outputs = {e.call_id: e.text for e in items if e.kind == "function_call_output"}
    name = (variables or {}).get("name", "")
    done: list[str] = []
    for e in items:
        if e.kind != "function_call" or e.name in ("transfer_call", "end_call"):
            continue
        args, result = _json(e.arguments), _json(outputs.get(e.call_id, ""))
        name = name or _name(result)
        done.append(_did(e.name, args, result))
    who = name or (f"a caller from a number ending {caller[-4:]}" if caller else "a caller")
    first = next((e.text for e in items if e.kind == "user"), "")
    parts = [f"Transferred call from {who}."]
    if reason:
        parts.append(_sentence(f"Reason: {_clip(reason, 80)}"))
    if first and " ".join(first.split()) not in " ".join(reason.split()):  # not said twice
        parts.append(f'They said: "{_clip(first, _QUOTE_CHARS)}"')
    if done:
        parts.append("Done so far: " + "; ".join(done[-3:]) + ".")
    text = " ".join(parts)
    return text if len(text) <= MAX_BRIEFING_CHARS else text[: MAX_BRIEFING_CHARS - 1] + "…"


def _json(text: str) -> dict[str, object]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _name(result: dict[str, object]) -> str:
    for holder in (result, result.get("customer")):
        if isinstance(holder, dict) and isinstance(holder.get("name"), str):
            return str(holder["name"])[:60]
    return ""


def _did(tool: str, args: dict[str, object], result: dict[str, object]) -> str:
    """``looked up customer``, ``get order status 1042: shipped`` …: one short clause."""
    what = tool.replace("_", " ")
    values = [str(v) for v in args.values() if isinstance(v, str | int) and not _number(str(v))]
    if values:
        what += " " + ", ".join(values[:2])
    status = result.get("status") or result.get("error")
    if isinstance(status, str) and status:
        what += f": {status}"
    return _clip(what, 80)


def _number(value: str) -> bool:
    """A phone number: never spoken in full (masked in logs, left out here)."""
    return value.startswith("+") and value[1:].isdigit() and mask(value) != value


def _sentence(text: str) -> str:
    """``text`` ending in one full stop (none added after ``?``, ``!``, ``.``, ``…``)."""
    return text if text.endswith((".", "?", "!", "…")) else text + "."


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
