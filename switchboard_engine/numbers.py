"""Spoken values in caller transcripts: numbers, dates, times and yes/no (pure functions).

Callers say numbers many ways and speech recognisers write them many ways; all of these
are the order number 1042::

    "1042"   "1,042"   "1 0 4 2"   "one oh four two"   "one zero four two"
    "ten forty two"   "ten forty-two"   "one thousand forty two"
    "one thousand and forty two"   "1,000 42"   "double oh" (→ "00")

:func:`find_numbers` returns every number in a text with its token span, as a digit
string (leading zeros kept: "oh four" → "04"). Dates and times resolve against an
explicit ``today`` so results are deterministic (no wall-clock inside).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

UNITS = {
    "zero": 0, "oh": 0, "o": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
REPEATS = {"double": 2, "triple": 3}
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17,
    "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
#: Words that are numbers only next to other number words ("o" and "oh" are also letters).
_WEAK = {"oh", "o"}
_DIGITS_RE = re.compile(r"^\d+(?:\.\d+)?$")
_ORDINAL_DIGITS_RE = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)$")
_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|[a-z]+(?:'[a-z]+)?|[+]")


def tokens(text: str) -> list[str]:
    """Lower-case word/number tokens; "1,042" → "1042", "forty-two" → "forty", "two"."""
    out: list[str] = []
    for tok in _TOKEN_RE.findall(text.lower().replace("’", "'")):
        if tok[0].isdigit():
            # "1,042" and "1.042" groupings (not decimals "2.5") become plain digits.
            if re.fullmatch(r"\d{1,3}(?:[,]\d{3})+", tok):
                tok = tok.replace(",", "")
            tok = tok.replace(",", "")
        out.append(tok)
    return out


def token_spans(text: str) -> list[tuple[int, int]]:
    """The character span ``[start, end)`` in ``text`` of each token :func:`tokens` gives,
    in the same order."""
    return [m.span() for m in _TOKEN_RE.finditer(text.lower().replace("’", "'"))]


def _is_number_word(tok: str) -> bool:
    return (
        tok in UNITS
        or tok in TEENS
        or tok in TENS
        or tok in SCALES
        or tok in REPEATS
        or bool(_DIGITS_RE.match(tok))
    )


@dataclass(frozen=True, slots=True)
class NumberSpan:
    """A number found in a token list: ``digits`` (a digit string, or a decimal such as
    "2.5"), tokens ``[start, end)``, and ``spoken`` (True if any word was spelled out)."""

    digits: str
    start: int
    end: int
    spoken: bool
    #: True when the run mixes digit-by-digit reading with a multi-digit group in the
    #: middle ("1, 2, 3, 4, 5, 10, 6"): the concatenation is a guess, to be read back.
    ambiguous: bool = False

    @property
    def value(self) -> float:
        """Numeric value (``int`` semantics for digit strings)."""
        return float(self.digits)


def _cardinal(run: list[str]) -> str | None:
    """ "one thousand and forty two" → "1042" (runs that contain a scale word)."""
    total, current, seen = 0, 0, False
    for tok in run:
        if tok == "and":
            continue
        if tok in ("a", "an"):
            current = max(current, 1)
            continue
        if tok in SCALES:
            scale = SCALES[tok]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
            seen = True
            continue
        if _DIGITS_RE.match(tok) and "." not in tok:
            current += int(tok)
        elif tok in UNITS:
            current += UNITS[tok]
        elif tok in TEENS:
            current += TEENS[tok]
        elif tok in TENS:
            current += TENS[tok]
        else:
            return None
        seen = True
    return str(total + current) if seen else None


def _units(run: list[str]) -> list[str] | None:
    """Split a scale-free run into digit groups: "ten forty two" → ["10", "42"]."""
    groups: list[str] = []
    i = 0
    while i < len(run):
        tok = run[i]
        if tok in REPEATS and i + 1 < len(run) and run[i + 1] in UNITS:
            groups.extend([str(UNITS[run[i + 1]])] * REPEATS[tok])
            i += 2
            continue
        if tok in REPEATS and i + 1 < len(run) and run[i + 1].isdigit():
            # Whisper's "double 719": the first digit is the doubled one → "7719".
            nxt = run[i + 1]
            groups.append(nxt[0] * (REPEATS[tok] - 1) + nxt)
            i += 2
            continue
        if tok in REPEATS:
            return None
        if _round_ten(tok) and i + 1 < len(run) and _single_digit(run[i + 1]):
            # "20 2" (Whisper's "20" then a spoken "two"): twenty-two.
            groups.append(str(int(tok) + _digit_value(run[i + 1])))
            i += 2
            continue
        if _DIGITS_RE.match(tok):
            groups.append(tok)
        elif tok in TENS:
            if i + 1 < len(run) and run[i + 1] in UNITS and UNITS[run[i + 1]] > 0:
                groups.append(str(TENS[tok] + UNITS[run[i + 1]]))
                i += 1
            else:
                groups.append(str(TENS[tok]))
        elif tok in TEENS:
            groups.append(str(TEENS[tok]))
        elif tok in UNITS:
            groups.append(str(UNITS[tok]))
        else:
            return None
        i += 1
    return groups


def _single_digit(tok: str) -> bool:
    """One digit 1-9, as a digit or a word."""
    return (tok.isdigit() and len(tok) == 1 and tok != "0") or (
        tok in UNITS and 0 < UNITS[tok] < 10
    )


def _digit_value(tok: str) -> int:
    return int(tok) if tok.isdigit() else UNITS[tok]


def _join(groups: list[str]) -> str:
    """Concatenate digit groups, except that "1000 42" (a round number followed by a
    smaller one that fits in its zeros) adds up: → "1042"."""
    if len(groups) == 1:
        return groups[0]
    out = groups[0]
    for k, g in enumerate(groups[1:]):
        zeros = len(out) - len(out.rstrip("0"))
        if k == 0 and "." not in out + g and zeros >= 2 and int(out) >= 100 and len(g) <= zeros:
            out = str(int(out) + int(g))
        else:
            out += g
    return out


def interpret(run: list[str]) -> str | None:
    """The digit string a run of number tokens stands for, or None."""
    words = [t for t in run if t != "and"]
    if not words:
        return None
    if any(t in SCALES for t in words):
        return _cardinal(run)
    groups = _units(words)
    if not groups:
        return None
    return _join(groups)


def _round_then_fits(before: str, after: str) -> bool:
    """ "500" then "12" (or "five"): a digit number ending in ≥ 2 zeros, then a smaller one
    that fits in its zeros."""
    if not after.isdigit():
        after = interpret([after]) or ""
    if not before.isdigit() or not after.isdigit():
        return False
    zeros = len(before) - len(before.rstrip("0"))
    return int(before) >= 100 and zeros >= 2 and len(after) <= zeros


def _ambiguous(run: list[str]) -> bool:
    """Digits read one at a time with a multi-digit group among them ("1 2 3 10 6")."""
    digits = [t for t in run if t.isdigit()]
    if len(digits) < 4 or len(digits) != len(run):
        return False
    singles = sum(len(t) == 1 for t in digits)
    # Seven or more digits read one at a time: a dropped or split digit is likely.
    return (singles >= 3 and any(len(t) > 1 for t in digits[1:])) or singles >= 7


def _digit_word(tok: str) -> bool:
    return (tok in UNITS and UNITS[tok] < 10) or (tok.isdigit() and len(tok) == 1)


#: Whisper's spellings of a spoken "two" among digits ("5, do 0, 8"; "20 to 68").
_TWO_AS = {"to", "too", "do"}


def _oh_heard_as_of(toks: list[str]) -> list[str]:
    """Whisper often writes a spoken "oh" between digits as "of" ("one of five one" for
    "one oh five one"): "of" between two single digits is read as "oh". Likewise "to",
    "too" or "do" inside a run of digits ("5, do 0, 8") or between a round ten and a
    two-digit number ("20 to 68" for "twenty two sixty eight") is read as "two"."""
    if "of" not in toks and not _TWO_AS.intersection(toks):
        return toks
    out = list(toks)
    for k in range(1, len(toks) - 1):
        before, after = toks[k - 1], toks[k + 1]
        if toks[k] == "of" and _digit_word(before) and _digit_word(after):
            out[k] = "oh"
        elif toks[k] in _TWO_AS and before.isdigit() and after.isdigit():
            # Inside a digit run ("5 do 0 8": another number beside it), or a round ten then
            # a two-digit number ("20 to 68"); "3 to 5 days", "20 to 30" stay ranges.
            beside = (k >= 2 and _is_number_word(toks[k - 2])) or (
                k + 2 < len(toks) and _is_number_word(toks[k + 2])
            )
            in_run = beside and (len(before) == 1 or len(after) == 1)
            if in_run or (_round_ten(before) and len(after) == 2 and not _round_ten(after)):
                out[k] = "two"
    return out


def _round_ten(tok: str) -> bool:
    """ "20" … "90": Whisper's digits for a spoken "twenty" … "ninety"."""
    return len(tok) == 2 and tok[0] in "23456789" and tok[1] == "0"


def find_numbers(toks: list[str]) -> list[NumberSpan]:
    """Every number in ``toks`` (see :func:`tokens`), left to right, as maximal runs."""
    out: list[NumberSpan] = []
    toks = _oh_heard_as_of(toks)
    i = 0
    n = len(toks)
    while i < n:
        tok = toks[i]
        starts = _is_number_word(tok) and tok not in SCALES
        starts = starts or (tok in ("a", "an") and i + 1 < n and toks[i + 1] in SCALES)
        if tok in _WEAK:
            starts = i + 1 < n and (_is_number_word(toks[i + 1]) or toks[i + 1] in _WEAK)
        if not starts:
            i += 1
            continue
        j = i + 1
        while j < n:
            t = toks[j]
            if (
                _is_number_word(t)
                or t in _WEAK
                or (
                    t == "and"
                    and j + 1 < n
                    and _is_number_word(toks[j + 1])
                    and (
                        any(x in SCALES for x in toks[i:j])
                        # Whisper's "10,000 and 1", "500 and 12": a round number in digits.
                        or _round_then_fits(toks[j - 1], toks[j + 1])
                    )
                )
            ):
                j += 1
            else:
                break
        run = toks[i:j]
        # A trailing weak word ("order one o") is kept only if it follows a number word.
        value = interpret(run)
        if value is not None:
            spoken = any(not t[0].isdigit() for t in run)
            out.append(NumberSpan(value, i, j, spoken, _ambiguous(run)))
        i = j
    return out


# --- yes / no -------------------------------------------------------------------------------
_YES = {
    "yes", "yeah", "yep", "yup", "sure", "correct", "right", "ok", "okay", "absolutely",
    "affirmative", "definitely", "certainly", "please", "go", "fine", "true", "alright",
}  # fmt: skip
_NO = {
    "no", "nope", "nah", "not", "don't", "dont", "cancel", "never", "wrong", "negative",
    "stop", "false", "incorrect", "wait",
}  # fmt: skip


def parse_yes_no(text: str) -> bool | None:
    """True for an affirmative answer, False for a negative one, None if neither.

    A negative marker wins ("that's not right" → False): callers correct with "no".
    """
    toks = set(tokens(text))
    if toks & _NO:
        return False
    if toks & _YES or {"of", "course"} <= toks or {"sounds", "good"} <= toks:
        return True
    return None


# --- dates ----------------------------------------------------------------------------------
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}


def _day_number(toks: list[str], i: int) -> tuple[int, int] | None:
    """A day of month at ``toks[i]``: "3", "3rd", "third", "twenty third" → (day, tokens)."""
    if i >= len(toks):
        return None
    tok = toks[i]
    m = _ORDINAL_DIGITS_RE.match(tok)
    if m:
        return int(m.group(1)), 1
    if tok.isdigit() and 1 <= int(tok) <= 31:
        return int(tok), 1
    if tok in TENS and i + 1 < len(toks) and toks[i + 1] in ORDINALS:
        day = TENS[tok] + ORDINALS[toks[i + 1]]
        return (day, 2) if day <= 31 else None
    if tok in ORDINALS:
        return ORDINALS[tok], 1
    if tok in ("twentieth", "thirtieth"):
        return ORDINALS[tok], 1
    return None


def _month_day(year: int, month: int, day: int, today: dt.date) -> dt.date | None:
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return None
    if date < today:
        try:
            return dt.date(year + 1, month, day)
        except ValueError:
            return None
    return date


def parse_date(text: str, today: dt.date) -> dt.date | None:
    """A calendar date said in ``text``, resolved against ``today``; None if none.

    Understands "today", "tomorrow", "the day after tomorrow", "yesterday", weekday
    names ("friday", "next friday": the next such day after today), "in 3 days",
    "march third" / "the 3rd of march" / "march 3" (this year, or next if past),
    "3/14" (US month/day) and ISO "2026-03-14".
    """
    low = text.lower()
    iso = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", low)
    if iso:
        try:
            return dt.date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            return None
    slash = re.search(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b", low)
    if slash:
        year = int(slash.group(3)) if slash.group(3) else today.year
        year = year + 2000 if year < 100 else year
        if slash.group(3):
            try:
                return dt.date(year, int(slash.group(1)), int(slash.group(2)))
            except ValueError:
                return None
        return _month_day(year, int(slash.group(1)), int(slash.group(2)), today)
    toks = tokens(low)
    joined = " ".join(toks)
    if "day after tomorrow" in joined:
        return today + dt.timedelta(days=2)
    if "tomorrow" in toks:
        return today + dt.timedelta(days=1)
    if "yesterday" in toks:
        return today - dt.timedelta(days=1)
    if "today" in toks or "tonight" in toks:
        return today
    m = re.search(r"\bin (\S+(?: \S+)?) (day|days|week|weeks)\b", joined)
    if m:
        count_toks = ["1" if t in ("a", "an") else t for t in m.group(1).split()]
        nums = find_numbers(count_toks)
        if nums and "." not in nums[-1].digits:
            count = int(nums[-1].digits)
            days = count * (7 if m.group(2).startswith("week") else 1)
            return today + dt.timedelta(days=days)
    for i, tok in enumerate(toks):
        if tok in _MONTHS:
            month = _MONTHS[tok]
            after = _day_number(toks, i + 1)
            if after is not None:
                return _month_day(today.year, month, after[0], today)
            # "the third of march"
            j = i - 1
            if j >= 0 and toks[j] == "of":
                for k in (j - 2, j - 1):
                    if k >= 0:
                        before = _day_number(toks, k)
                        if before is not None and k + before[1] == j:
                            return _month_day(today.year, month, before[0], today)
        if tok in _WEEKDAYS:
            ahead = (_WEEKDAYS[tok] - today.weekday()) % 7
            return today + dt.timedelta(days=ahead or 7)
    return None


# --- times ----------------------------------------------------------------------------------
_TIME_AFTER = frozenset({"am", "pm", "o'clock", "oclock"})


def parse_time(text: str) -> dt.time | None:
    """A clock time said in ``text``; None if none.

    Understands "noon", "midnight", "3 pm", "3:30 p.m.", "half past three",
    "quarter to four", "at ten thirty", "15:45", "seven in the evening". Without
    am/pm a time is taken as said (24-hour clock).
    """
    low = text.lower().replace("a.m.", "am").replace("p.m.", "pm")
    if re.search(r"\b(noon|midday)\b", low):
        return dt.time(12, 0)
    if re.search(r"\bmidnight\b", low):
        return dt.time(0, 0)
    pm = bool(re.search(r"\b(pm|afternoon|evening|tonight)\b|\d(pm)\b", low))
    am = bool(re.search(r"\b(am|morning)\b|\d(am)\b", low))
    low = re.sub(r"(\d)(am|pm)\b", r"\1 \2", low)

    def fix(hour: int, minute: int) -> dt.time | None:
        if pm and hour < 12:
            hour += 12
        if am and hour == 12:
            hour = 0
        if 0 <= hour < 24 and 0 <= minute < 60:
            return dt.time(hour, minute)
        return None

    colon = re.search(r"\b(\d{1,2}):(\d{2})\b", low)
    if colon:
        return fix(int(colon.group(1)), int(colon.group(2)))
    toks = tokens(low)
    for i, tok in enumerate(toks):
        if tok in ("half", "quarter") and i + 2 < len(toks) and toks[i + 1] in ("past", "to"):
            nums = find_numbers(toks[i + 2 : i + 3])
            if nums:
                hour = int(nums[0].digits)
                minutes = 30 if tok == "half" else 15
                if toks[i + 1] == "to":
                    return fix((hour - 1) % 24, 60 - minutes)
                return fix(hour, minutes)
    cue = am or pm or "at" in toks or "o'clock" in toks or "oclock" in toks
    if not cue:
        return None
    for span in find_numbers(toks):
        words = toks[span.start : span.end]
        after = toks[span.end] if span.end < len(toks) else ""
        before = toks[span.start - 1] if span.start > 0 else "at"
        if before not in ("at", "around", "by", "about") and after not in _TIME_AFTER:
            continue
        if "." in span.digits:
            continue
        value = int(span.digits)
        # "ten thirty" → groups 10|30; "1030" → 10:30; "3" → 3:00.
        groups = _units([t for t in words if t != "and"]) if len(words) > 1 else None
        if groups and len(groups) == 2 and int(groups[1]) < 60:
            return fix(int(groups[0]), int(groups[1]))
        if value < 24:
            return fix(value, 0)
        if 100 <= value <= 2359 and value % 100 < 60:
            return fix(value // 100, value % 100)
    return None
