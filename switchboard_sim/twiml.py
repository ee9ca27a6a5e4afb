"""TwiML as the carrier simulator reads it: the verbs a Switchboard answer or a REST
update uses (``<Connect><Stream>`` with ``<Parameter>``, ``<Dial>``, ``<Say>``). Pure.

Source: docs/protocols.md §2 "Voice webhook and TwiML"; Twilio "TwiML Voice: <Connect>
<Stream>", "<Dial>", "<Say>".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Answer:
    """What a TwiML answer asks of a call: ``<Connect><Stream>`` (``stream_url``, its
    ``<Parameter>`` s and its attributes, e.g. ``statusCallback``) and/or ``<Dial>``
    (``dial_to``); None / empty where the document has none."""

    stream_url: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    dial_to: str | None = None


def parse_answer(twiml: str) -> Answer:
    """The :class:`Answer` in a TwiML document.

    Raises ``xml.etree.ElementTree.ParseError`` for a document that is not XML and
    ``ValueError`` when its root is not ``<Response>``.
    """
    root = ET.fromstring(twiml)
    if root.tag != "Response":
        raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
    stream = root.find("./Connect/Stream")
    dial = root.find("./Dial")
    dial_to = _dial_target(dial) if dial is not None else None
    if stream is None:
        return Answer(dial_to=dial_to)
    params: dict[str, str] = {}
    for p in stream.findall("./Parameter"):
        if p.get("name"):
            params[p.get("name", "")] = p.get("value", "")
    return Answer(stream.get("url"), params, dict(stream.attrib), dial_to)


def _dial_target(dial: ET.Element) -> str:
    """The number (or client/SIP target) a ``<Dial>`` element calls."""
    text = (dial.text or "").strip()
    if text:
        return text
    for child in dial:
        if (child.text or "").strip():
            return (child.text or "").strip()
    return ""


def parse_dial(twiml: str) -> str | None:
    """The ``<Dial>`` target of a TwiML document, or None if it has no ``<Dial>``."""
    root = ET.fromstring(twiml)
    dial = root.find("./Dial")
    return None if dial is None else _dial_target(dial)


def parse_say(twiml: str) -> list[str]:
    """The texts of a TwiML document's top-level ``<Say>`` verbs, in order."""
    root = ET.fromstring(twiml)
    return [(say.text or "").strip() for say in root.findall("./Say")]


@dataclass(frozen=True, slots=True)
class DialVerb:
    """A ``<Dial>`` as the simulator plays it: ``target`` (the number or ``sip:`` URI),
    ``noun`` (``Number``, ``Sip`` or "" for a bare number), its ``url`` (the whisper
    TwiML fetched on the target's leg once it answers), the ``<Dial>``'s ``action`` and
    ``timeout`` (seconds of ringing; Twilio's default 30)."""

    target: str
    noun: str = ""
    url: str | None = None
    action: str | None = None
    timeout_s: int = 30


def parse_dial_verb(twiml: str) -> DialVerb | None:
    """The ``<Dial>`` of a TwiML document with its attributes, or None if it has none."""
    root = ET.fromstring(twiml)
    dial = root.find("./Dial")
    if dial is None:
        return None
    noun = next((c for c in dial if c.tag in ("Number", "Sip", "Client")), None)
    timeout = dial.get("timeout", "30")
    return DialVerb(
        target=_dial_target(dial),
        noun=noun.tag if noun is not None else "",
        url=noun.get("url") if noun is not None else None,
        action=dial.get("action"),
        timeout_s=int(timeout) if timeout.isdigit() else 30,
    )


@dataclass(frozen=True, slots=True)
class GatherVerb:
    """A ``<Gather>``: where its result goes (``action``), ``num_digits``, ``timeout`` (s),
    ``action_on_empty_result`` and the ``<Say>`` texts it plays."""

    action: str | None
    num_digits: int | None
    timeout_s: int
    action_on_empty_result: bool
    says: list[str]


def parse_gather(twiml: str) -> GatherVerb | None:
    """The first top-level ``<Gather>`` of a TwiML document, or None."""
    root = ET.fromstring(twiml)
    gather = root.find("./Gather")
    if gather is None:
        return None
    digits, timeout = gather.get("numDigits", ""), gather.get("timeout", "5")
    return GatherVerb(
        action=gather.get("action"),
        num_digits=int(digits) if digits.isdigit() else None,
        timeout_s=int(timeout) if timeout.isdigit() else 5,
        action_on_empty_result=gather.get("actionOnEmptyResult", "false") == "true",
        says=[(say.text or "").strip() for say in gather.findall("./Say")],
    )


def has_hangup(twiml: str) -> bool:
    """Whether a TwiML document has a top-level ``<Hangup>``."""
    return ET.fromstring(twiml).find("./Hangup") is not None
