"""Secure keypad capture (``collect_digits``): the digit-collection state of one call.

While a capture runs, the call session routes every keypad digit here instead of into
the model's context, the transcript or the logs, and keeps the caller's audio from the
Realtime session. The model only learns the outcome (``KeypadCapture.output``):
``{"collected": true, "digits": n, "last4": "1234"}`` or
``{"collected": false, "reason": "timeout" | "invalid" | "cancelled"}``. The digits
themselves leave only in a ``app.call.actions.SecureDigits`` action (its ``repr`` hides
them) for the flow's digit sink.

The rules follow Twilio's ``<Gather input="dtmf">`` (``numDigits``, ``finishOnKey``,
``timeout``): input ends at ``finish_on_key`` (not part of the digits), at
``max_digits``, or after ``inter_digit_timeout_ms`` without a digit once one was
entered; with no digit at all within ``first_digit_timeout_ms`` it times out. A rejected
entry (too short, failing ``pattern`` or the Luhn check of ISO/IEC 7812-1 Annex B) is
asked for again up to ``retries`` times.

The capture is pure (no clock or I/O; the session supplies the timer and speaks the
prompts); ``deliver`` hands the digits to the deployment's ``DigitSink``.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

#: The keypad's symbols as Twilio reports them (``dtmf.digit``).
KEYPAD = frozenset("0123456789*#")


class CaptureState(enum.StrEnum):
    """``waiting`` (no digit yet) → ``entering`` → ``collected`` | ``failed``."""

    waiting = "waiting"
    entering = "entering"
    collected = "collected"
    failed = "failed"


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (0-9 only, at least 2) pass the Luhn mod-10 check
    (ISO/IEC 7812-1:2017 Annex B), as card numbers do."""
    if len(digits) < 2 or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class KeypadSpec:
    """One capture's rules (ms, digit counts), from the flow's ``collect_digits`` settings
    and the model's arguments."""

    purpose: str
    prompt: str
    retry_prompt: str
    max_digits: int = 16
    min_digits: int = 1
    finish_on_key: str = "#"
    first_digit_timeout_ms: int = 15_000
    inter_digit_timeout_ms: int = 5_000
    retries: int = 2
    #: ``luhn`` or None.
    check: str | None = None
    #: A regular expression the whole entry must match (``re.fullmatch``), or None.
    pattern: str | None = None
    #: Spoken digits are taken too (``on_spoken``), through a listen-only session.
    spoken: bool = False


@dataclass(slots=True)
class KeypadCapture:
    """One ``collect_digits`` call in progress (``call_id`` of its ``function_call``)."""

    call_id: str
    spec: KeypadSpec
    state: CaptureState = CaptureState.waiting
    attempts: int = 1
    reason: str = ""
    _digits: list[str] = field(default_factory=list, repr=False)
    _value: str = field(default="", repr=False)

    @property
    def done(self) -> bool:
        return self.state is CaptureState.collected or self.state is CaptureState.failed

    @property
    def entered(self) -> int:
        """How many digits the current attempt holds."""
        return len(self._digits)

    def timeout_ms(self) -> int:
        """The wait (ms) for the next digit in the current state."""
        if self.state is CaptureState.entering:
            return self.spec.inter_digit_timeout_ms
        return self.spec.first_digit_timeout_ms

    def on_digit(self, digit: str) -> bool:
        """Take one keypad symbol; True when the attempt is over (``finish``ed)."""
        if self.done:
            return False
        if digit == self.spec.finish_on_key:
            return self._finish()
        self._digits.append(digit)
        self.state = CaptureState.entering
        if len(self._digits) >= self.spec.max_digits:
            return self._finish()
        return False

    def on_spoken(self, text: str) -> bool:
        """What the caller said while the capture listens (a transcript): its digits
        (``spoken_digits``) are entered and end the attempt, as the finish key would; True
        when the attempt is over. Speech without a digit changes nothing."""
        if self.done or not self.spec.spoken:
            return False
        digits = spoken_digits(text)
        if not digits:
            return False
        for digit in digits:
            if self.on_digit(digit):
                return True
        return self._finish()

    def on_timeout(self) -> bool:
        """No digit within ``timeout_ms``: an entry in progress ends (as ``<Gather>``'s
        ``timeout`` submits it); an empty one is a failed attempt. True: attempt over."""
        if self.done:
            return False
        if self.state is CaptureState.entering:
            return self._finish()
        return self._reject("timeout")

    def cancel(self, reason: str = "cancelled") -> None:
        if not self.done:
            self._digits.clear()
            self.state = CaptureState.failed
            self.reason = reason

    @property
    def retrying(self) -> bool:
        """The last attempt was rejected and another one is running."""
        return self.state is CaptureState.waiting and self.attempts > 1 and not self._digits

    def _finish(self) -> bool:
        entry = "".join(self._digits)
        if len(entry) < self.spec.min_digits:
            return self._reject("timeout" if not entry else "too_short")
        if self.spec.check == "luhn" and not luhn_ok(entry):
            return self._reject("invalid")
        if self.spec.pattern is not None and re.fullmatch(self.spec.pattern, entry) is None:
            return self._reject("invalid")
        self._value = entry
        self._digits.clear()
        self.state = CaptureState.collected
        return True

    def _reject(self, reason: str) -> bool:
        self._digits.clear()
        self.reason = reason
        if self.attempts > self.spec.retries:
            self.state = CaptureState.failed
        else:
            self.attempts += 1
            self.state = CaptureState.waiting
        return True

    def take_value(self) -> str:
        """The collected digits, once (then forgotten here)."""
        value, self._value = self._value, ""
        return value

    def output(self) -> dict[str, object]:
        """What the model learns: never the digits beyond the last four."""
        if self.state is CaptureState.collected:
            return {
                "ok": True,
                "collected": True,
                "purpose": self.spec.purpose,
                "digits": len(self._value),
                "last4": self._value[-4:],
                "attempts": self.attempts,
            }
        return {
            "ok": False,
            "collected": False,
            "purpose": self.spec.purpose,
            "attempts": self.attempts,
            "error": {
                "code": self.reason or "cancelled",
                "message": _MESSAGES.get(self.reason, ""),
            },
        }


_MESSAGES = {
    "timeout": "the caller entered nothing in time",
    "too_short": "the caller entered too few digits",
    "invalid": "the digits entered were not valid",
    "cancelled": "the capture was cancelled",
}


_UNITS = {
    "zero": 0, "oh": 0, "o": 0, "nought": 0, "nil": 0,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3}
_KEYS = {"pound": "#", "hash": "#", "star": "*", "asterisk": "*"}
_TOKEN = re.compile(r"[a-z]+|[0-9]+|[#*]")


def spoken_digits(text: str) -> str:
    """The keypad symbols a caller said (``"four two, double seven"`` → ``"4277"``):
    digit words (``oh``/``zero`` for 0), numerals as a recogniser writes them (``4,242``,
    ``42-42``), ``double``/``triple`` before a digit, tens and teens (``forty-two`` →
    ``42``), ``hundred`` (``four hundred and five`` → ``405``), and ``pound``/``hash``,
    ``star``. Other words are skipped; "" when nothing digit-like was said."""
    words = _TOKEN.findall(text.lower())
    out: list[str] = []
    repeat = 1
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        group = ""
        if w.isdigit() or w in ("#", "*"):
            group = w
        elif w in _UNITS:
            group = str(_UNITS[w])
        elif w in _TEENS:
            group = str(_TEENS[w])
        elif w in _TENS:
            if _UNITS.get(nxt, 0) > 0:
                group, i = str(_TENS[w] + _UNITS[nxt]), i + 1
            else:
                group = str(_TENS[w])
        elif w in _KEYS:
            group = _KEYS[w]
        elif w in _REPEAT:
            repeat = _REPEAT[w]
        elif w == "hundred" and out and len(out[-1]) == 1 and out[-1].isdigit():
            rest = [x for x in words[i + 1 : i + 3] if x != "and"]
            head = rest[0] if rest else ""
            if head in _UNITS:
                out.append("0")  # "four hundred (and) five" → 405
            elif head not in _TEENS and head not in _TENS:
                out.append("00")  # "four hundred" → 400; "four hundred twelve" → 4, 12
        if group:
            out.append(group * repeat if len(group) == 1 else group)
            repeat = 1
        i += 1
    return "".join(out)


class DigitSink(Protocol):
    """Where collected digits go (a payment processor, a PIN check): called once per
    successful capture with the call's SID, the capture's ``purpose`` and the digits."""

    async def __call__(self, call_sid: str, purpose: str, digits: str) -> None: ...


async def deliver(sink: DigitSink | None, call_sid: str, purpose: str, digits: str) -> None:
    """Hand ``digits`` to ``sink``; a failing sink is logged (never with the digits) and
    the call goes on. No sink: the digits are dropped."""
    if sink is None:
        log.info("keypad capture %s: %d digits, no digit sink configured", purpose, len(digits))
        return
    try:
        await sink(call_sid, purpose, digits)
    except Exception as exc:
        log.warning("digit sink failed for %s: %s", purpose, type(exc).__name__)
