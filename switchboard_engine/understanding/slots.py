"""Slot values: a tool's arguments filled from an utterance by their JSON Schema.

Digit-pattern strings from numbers, integers within minimum/maximum, enums and quoted
example values (with synonyms), ``format: date/time``, booleans from yes/no, E.164 phones
(10 digits → +1…; "my number" → the caller's number when the instructions state it),
account-like ids ("acme 1001" → ``ACME-1001`` when the description shows that shape),
free text (``item``) from the words left over, ``reason`` from the utterance.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from switchboard_engine.numbers import parse_date, parse_time, parse_yes_no
from switchboard_engine.numbers import tokens as number_tokens
from switchboard_engine.understanding.normalize import (
    REQUEST_WORDS,
    STOP_WORDS,
    Analysis,
    analyse,
    concept,
    expand,
    stem,
    word_set,
)
from switchboard_engine.understanding.toolspec import ToolSpec


@dataclass(frozen=True, slots=True)
class Context:
    """Facts the engine may use besides the utterance.

    ``caller_number``: E.164 of the caller when the session's instructions state it;
    ``targets``: transfer target names (a flow's ``transfer_targets``); ``company``: who
    the agent answers for (from the instructions); ``today``: for relative dates.
    """

    today: dt.date = field(default_factory=lambda: dt.date(2000, 1, 1))
    caller_number: str | None = None
    company: str | None = None
    targets: tuple[str, ...] = ()
    greeting: str | None = None


def context_from_instructions(
    instructions: str,
    today: dt.date,
    targets: Iterable[str] = (),
    greeting: str | None = None,
) -> Context:
    """Read the caller's number (an E.164 number next to "caller"/"calling from") and the
    company ("agent/assistant for Acme") from session instructions."""
    caller = None
    m = re.search(
        r"(?i)(?:caller|calling from|caller's number|phone)[^+\n]{0,40}(\+[1-9]\d{6,14})",
        instructions,
    )
    if m:
        caller = m.group(1)
    company = None
    c = re.search(
        r"\b(?:agent|assistant|representative) (?:for|at|of) ([A-Z][\w&.'-]*)", instructions
    )
    if c:
        company = c.group(1).rstrip(".")
    return Context(today, caller, company, tuple(targets), greeting)


def _pattern_ok(schema: Mapping[str, Any], value: str) -> bool:
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                return False
        except re.error:
            return False
    min_len, max_len = schema.get("minLength"), schema.get("maxLength")
    if isinstance(min_len, int) and len(value) < min_len:
        return False
    return not (isinstance(max_len, int) and len(value) > max_len)


def _strict_string(schema: Mapping[str, Any]) -> bool:
    """A string schema whose pattern rejects ordinary words (e.g. digits only)."""
    pattern = schema.get("pattern")
    if not isinstance(pattern, str):
        return False
    try:
        return re.search(pattern, "hello") is None and re.search(pattern, "word") is None
    except re.error:
        return False


def _range_ok(schema: Mapping[str, Any], value: float) -> bool:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if isinstance(lo, int | float) and value < lo:
        return False
    return not (isinstance(hi, int | float) and value > hi)


def schema_types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON Schema ``type`` of an argument as a set (``["string", "null"]`` or one)."""
    t = schema.get("type")
    if isinstance(t, list):
        return {str(x) for x in t}
    return {str(t)} if isinstance(t, str) else set()


def is_phone(name: str, schema: Mapping[str, Any]) -> bool:
    """True for a phone-number argument: named ``*phone*`` or with an E.164 pattern."""
    pattern = str(schema.get("pattern") or "")
    return "phone" in name.lower() or pattern.startswith("^\\+")


def _to_e164(digits: str, caller: str | None) -> str | None:
    if len(digits) == 10:
        country = "1"
        if caller and caller.startswith("+") and not caller.startswith("+1"):
            return None
        return f"+{country}{digits}"
    if 11 <= len(digits) <= 15 and digits[0] != "0":
        return f"+{digits}"
    return None


def label_of(name: str) -> str:
    """``order_id`` → "order", ``delivery_date`` → "delivery date"."""
    base = re.sub(r"_(id|number|no)$", "", name)
    return base.replace("_", " ").strip()


def _is_transfer_target(tool: ToolSpec, name: str) -> bool:
    return tool.kind == "transfer" and name in ("target", "to", "destination", "department")


def candidates(name: str, schema: Mapping[str, Any], tool: ToolSpec, ctx: Context) -> list[str]:
    """Closed set of values a string argument may take: enum, else quoted examples in its
    description plus the flow's transfer targets (for a transfer tool's target)."""
    enum = schema.get("enum")
    if isinstance(enum, list):
        return [str(v) for v in enum]
    values: list[str] = []
    if _is_transfer_target(tool, name):
        values += list(ctx.targets)
        values += re.findall(r'"([A-Za-z][\w-]{0,30})"', str(schema.get("description") or ""))
        values += re.findall(r'"([A-Za-z][\w-]{0,30})"', tool.description)
    return list(dict.fromkeys(values))


def _value_said(value: str, tool: ToolSpec, a: Analysis) -> bool:
    """True if ``a`` names ``value``: a shared concept, or the value or one of its flow
    synonyms said word for word ("I'll be there" → ``confirmed``)."""
    phrases = [value]
    for key, words in tool.synonyms.items():
        if key.lower() == value.lower():
            phrases += list(words)
    said = f" {' '.join(number_tokens(expand(a.text)))} "
    utt = set(a.concepts)
    for phrase in phrases:
        concepts = set(analyse(phrase).concepts)
        if concepts and concepts & utt:
            return True
        if f" {' '.join(number_tokens(expand(phrase)))} " in said:
            return True
    return False


@dataclass(slots=True)
class _Fill:
    """Argument values found in one utterance and the number spans they used."""

    values: dict[str, Any] = field(default_factory=dict)
    used_numbers: set[int] = field(default_factory=set)
    used_words: set[int] = field(default_factory=set)


def _account_like(schema: Mapping[str, Any], a: Analysis) -> tuple[str, set[int]] | None:
    """ "acme 1001" → "ACME-1001" when the description shows that shape (e.g. ACME-1001)."""
    desc = str(schema.get("description") or "")
    m = re.search(r"\b([A-Z]{2,10})-(\d{2,10})\b", desc)
    if not m:
        return None
    prefix = m.group(1).lower()
    for n in a.numbers:
        if n.start > 0 and a.words[n.start - 1] == prefix and "." not in n.digits:
            value = f"{m.group(1)}-{n.digits}"
            if _pattern_ok(schema, value):
                return value, {n.start - 1, n.start}
    return None


def _number_value(
    name: str, schema: Mapping[str, Any], a: Analysis, fill: _Fill, answer: bool
) -> tuple[Any, int] | None:
    types = schema_types(schema)
    for idx, n in enumerate(a.numbers):
        if idx in fill.used_numbers:
            continue
        if "integer" in types:
            if "." in n.digits:
                continue
            value: Any = int(n.digits)
        else:
            value = float(n.digits) if "." in n.digits else int(n.digits)
        if not _range_ok(schema, value):
            continue
        return value, idx
    if "integer" in types and not answer:
        # "a coffee grinder", "an espresso machine", "one milk frother": a single one.
        return None
    return None


def _article_one(a: Analysis) -> bool:
    """True when the thing asked for is introduced with "a"/"an" ("buy a grinder",
    or an answer "a milk frother")."""
    verbs = ("buy", "order", "purchase", "get", "want", "need", "for")
    for i, w in enumerate(a.words[:-1]):
        introduces = w in ("a", "an") and a.words[i + 1] not in STOP_WORDS
        if introduces and (i == 0 or a.words[i - 1] in verbs):
            return True
    return False


_LEAD_FILLERS = word_set(
    "it is its it's just um uh well so and oh yes yeah sure okay ok i would like want "
    "need to order buy get a an the some please"
)


def _free_text(a: Analysis, tool: ToolSpec, fill: _Fill, answer: bool) -> str | None:
    """The longest run of words that are not request words, numbers or used by another
    argument: "I'd like to order two coffee grinders" → "coffee grinders"."""
    number_idx = {i for n in a.numbers for i in range(n.start, n.end)}
    skip = REQUEST_WORDS | STOP_WORDS | {"buy", "purchase", "order", "new", "place"}
    name_words = set(analyse(tool.name.replace("_", " ")).concepts)
    best: list[str] = []
    run: list[str] = []
    for i, w in enumerate([*a.words, "."]):
        stop = (
            i >= len(a.words)
            or i in number_idx
            or i in fill.used_words
            or w in {"please", "thanks", "thank", "and"}
            or (w in skip and w not in ("of",))
            or concept(w) in name_words
        )
        # "of" joins two content words ("bags of coffee beans").
        if w == "of" and run and i + 1 < len(a.words) and a.words[i + 1] not in skip:
            run.append(w)
            continue
        if stop:
            while run and run[-1] in ("of", "and"):
                run.pop()
            if len(run) > len(best):
                best = run
            run = []
        else:
            run.append(w)
    if not best and answer:
        words = [w for w in a.words if w not in _LEAD_FILLERS]
        best = words
    return " ".join(best) if best else None


def _fill_order(name: str, schema: Mapping[str, Any]) -> int:
    if _strict_string(schema) or is_phone(name, schema):
        return 0
    if schema_types(schema) & {"integer", "number", "boolean"} or "format" in schema:
        return 1
    if "enum" in schema:
        return 2
    return 3


def is_free_text(tool: ToolSpec, name: str) -> bool:
    """A plain string argument (no pattern, enum, format or closed set of values) other
    than ``reason``."""
    schema = tool.properties.get(name, {})
    return (
        schema_types(schema) <= {"string"}
        and not candidates(name, schema, tool, Context())
        and not _is_transfer_target(tool, name)
        and _fill_order(name, schema) == 3
        and name != "reason"
        and not name.endswith(("date", "time"))
    )


def fill_arguments(
    tool: ToolSpec, a: Analysis, ctx: Context, *, only: str | None = None, answer: bool = False
) -> dict[str, Any]:
    """Argument values ``a`` states for ``tool`` (all, or ``only`` one).

    ``answer``: the utterance answers a question about ``only``, so a bare value counts
    ("two", "coffee grinder").
    """
    fill = _Fill()
    props = tool.properties
    names = [only] if only is not None else list(props)
    # Strictly typed arguments first, free text last, so free text takes what is left.
    names.sort(key=lambda n: _fill_order(n, props.get(n, {})))
    low = " ".join(a.words)
    for name in names:
        schema = props.get(name)
        if schema is None:
            continue
        types = schema_types(schema)
        value: Any = None
        fmt = schema.get("format")
        if "boolean" in types:
            value = parse_yes_no(a.text)
        elif "integer" in types or "number" in types:
            got = _number_value(name, schema, a, fill, answer)
            if got is not None:
                value, idx = got
                fill.used_numbers.add(idx)
            elif "integer" in types and (_article_one(a) or (answer and "a" in a.words)):
                value = 1 if _range_ok(schema, 1) else None
        elif fmt == "date" or (fmt is None and name.endswith("date")):
            d = parse_date(a.text, ctx.today)
            value = d.isoformat() if d else None
        elif fmt == "time" or (fmt is None and name.endswith("time")):
            t = parse_time(a.text)
            value = t.strftime("%H:%M") if t else None
        elif fmt == "date-time":
            d, t = parse_date(a.text, ctx.today), parse_time(a.text)
            if d and t:
                value = dt.datetime.combine(d, t).isoformat(timespec="minutes")
        elif is_phone(name, schema):
            for idx, n in enumerate(a.numbers):
                e164 = _to_e164(n.digits, ctx.caller_number)
                if e164 and _pattern_ok(schema, e164):
                    value = e164
                    fill.used_numbers.add(idx)
                    break
            if (
                value is None
                and ctx.caller_number
                and re.search(r"\b(my|this) (phone )?number\b|\bcalling from\b", low)
            ):
                value = ctx.caller_number
        elif (cands := candidates(name, schema, tool, ctx)) and "string" in (types or {"string"}):
            utt = set(a.concepts)
            # A value said as such ("sales") beats one reached through a synonym.
            said = {stem(w) for w in a.words}
            literal = [c for c in cands if stem(c.lower()) in said]
            for cand in literal or cands:
                if _value_said(cand, tool, a):
                    value = cand
                    break
            if value is None and tool.kind == "transfer" and "human" in utt:
                value = next((c for c in cands if concept(c.lower()) == "human"), None)
        elif (acct := _account_like(schema, a)) is not None:
            value, words = acct
            fill.used_words |= words
            fill.used_numbers |= {k for k, n in enumerate(a.numbers) if n.start in words}
        elif _strict_string(schema):
            if True:
                for idx, n in enumerate(a.numbers):
                    if idx not in fill.used_numbers and _pattern_ok(schema, n.digits):
                        value = n.digits
                        fill.used_numbers.add(idx)
                        break
        elif name == "reason":
            if only is None:
                value = f"caller said: {a.text.strip()}"[: int(schema.get("maxLength") or 200)]
        elif ("string" in types or not types) and (name in tool.required or answer):
            text = _free_text(a, tool, fill, answer)
            if text and _pattern_ok(schema, text):
                value = text
        if value is not None:
            fill.values[name] = value
    return fill.values


def strict_fits(tool: ToolSpec, a: Analysis, ctx: Context) -> dict[str, Any]:
    """Required, strictly typed arguments of ``tool`` that ``a`` holds a fitting value for
    (digit patterns, ranged numbers, enums): evidence that the caller means this tool."""
    out: dict[str, Any] = {}
    if not a.numbers:
        return out
    props = tool.properties
    for name in tool.required:
        schema = props[name]
        types = schema_types(schema)
        strict = _strict_string(schema) and not is_phone(name, schema)
        ranged = ("integer" in types or "number" in types) and (
            "minimum" in schema and "maximum" in schema
        )
        if not (strict or ranged):
            continue
        got = fill_arguments(tool, a, ctx, only=name)
        if name in got:
            out[name] = got[name]
    return out
