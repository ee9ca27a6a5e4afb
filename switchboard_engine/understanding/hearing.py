"""How an utterance was heard through speech, and the doubt about its numbers.

:class:`Heard` carries a transcription's confidence, its numbers with the probability of
their tokens, and the other readings of the same audio (the beam's other hypotheses and
the *spelled* reading, decoded with numerals suppressed: ``switchboard_engine.asr``).
:func:`numbers_sure` says whether a number may be acted on without a read-back;
:func:`other_values` lists what else the audio was heard as, to read back next when the
caller says no; :func:`read_back_text` is how a value is read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from switchboard_engine.numbers import NumberSpan
from switchboard_engine.understanding.normalize import analyse
from switchboard_engine.understanding.replies import humanize_value
from switchboard_engine.understanding.slots import Context, fill_arguments, label_of
from switchboard_engine.understanding.toolspec import ToolSpec

#: A transcript heard with less confidence than this (0..1, Whisper's mean token
#: probability) has its numbers and names read back before a tool acts on them.
CONFIRM_BELOW = 0.75
#: A number heard through speech is acted on without a read-back only if every token of
#: it was decoded with at least this probability (Whisper's per-token probability), every
#: other beam hypothesis holds the same digits, and the transcript is heard with
#: :data:`TRANSCRIPT_SURE`; tiny.en on phone audio is rarely that sure, so most spoken
#: numbers are read back (bench/data/tuning_phrasings.yaml: no wrong number passes).
NUMBER_SURE = 0.6
#: ... and the whole transcript with at least this confidence (wrong numbers on the tuning
#: set came with transcript confidence up to 0.80).
TRANSCRIPT_SURE = 0.82
#: Read-backs of one doubtful value before asking for it again: the value heard, then
#: the first different value another reading of the audio holds (the spelled pass, the
#: other beam hypotheses).
MAX_READ_BACKS = 2
#: Values of one argument the caller may reject before the engine stops asking for it
#: and offers a person instead.
MAX_REJECTIONS = 3


@dataclass(frozen=True, slots=True)
class Heard:
    """How a transcript was heard: ``confidence`` (0..1, Whisper's mean token
    probability), ``numbers`` (each number in it as digits, with the lowest probability
    of the tokens it was written with), ``alternatives`` (the texts of the other beam
    hypotheses) and ``spelled`` (the audio decoded again with numerals suppressed, so
    numbers come out as the words said; "" if not decoded so)."""

    confidence: float
    numbers: tuple[tuple[str, float], ...] = ()
    alternatives: tuple[str, ...] = ()
    spelled: str = ""

    def readings(self) -> tuple[str, ...]:
        """The other readings of the utterance, the spelled one first."""
        return (self.spelled, *self.alternatives) if self.spelled else self.alternatives

    def number_confidence(self, digits: str) -> float:
        """The probability ``digits`` was heard with (0.0 if it was not heard)."""
        return min((p for d, p in self.numbers if d == digits), default=0.0)


def numbers_sure(heard: Heard, spans: Sequence[NumberSpan]) -> bool:
    """True if the numbers ``spans`` of a transcript were heard surely enough to act on
    without a read-back: the transcript with :data:`TRANSCRIPT_SURE`, each number's tokens
    with :data:`NUMBER_SURE`, and every other reading holding the same digits (a spelled
    reading that wrote no number at all lost it: it has no say)."""
    if heard.confidence < TRANSCRIPT_SURE:
        return False
    if any(heard.number_confidence(n.digits) < NUMBER_SURE for n in spans):
        return False
    others = [{n.digits for n in analyse(alt).numbers} for alt in heard.alternatives]
    spelled = {n.digits for n in analyse(heard.spelled).numbers}
    if spelled:
        others.append(spelled)
    return all(n.digits in o for n in spans for o in others)


def other_values(
    heard: Heard,
    tool: ToolSpec,
    context: Context,
    name: str,
    value: Any,
    rejected: frozenset[tuple[str, Any]] = frozenset(),
) -> tuple[Any, ...]:
    """Other number values for argument ``name`` of ``tool`` that other readings of the
    utterance hold as numbers (valid for the schema, different from ``value`` — None: the
    value was not heard — and not ``rejected`` by the caller), best first: what to read
    back if the caller says no. At most :data:`MAX_READ_BACKS` values in all."""
    if value is not None and not str(value).isdigit():
        return ()
    out: list[Any] = []
    for reading in heard.readings():
        a = analyse(reading)
        other = fill_arguments(tool, a, context, only=name, answer=True).get(name)
        found = other is not None and any(n.digits == str(other) for n in a.numbers)
        if found and other != value and other not in out and (name, other) not in rejected:
            out.append(other)
    return tuple(out[: MAX_READ_BACKS - (value is not None)])


def read_back_text(tool: ToolSpec, name: str, value: Any) -> str:
    """ "order 4 4 3 2 1 1 0 9" (digit strings read one digit at a time), else the value."""
    text = str(value)
    label = label_of(name)
    if text.isdigit():
        return f"{label} {' '.join(text)}"
    return f"{label} {humanize_value(value)}" if label else humanize_value(value)
