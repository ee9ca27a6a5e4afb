"""What the engine says: questions for missing arguments, confirmations, tool results.

Pure functions of the tool, its arguments and result, and the :class:`Context`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from switchboard_engine.understanding.slots import (
    Context,
    candidates,
    is_phone,
    label_of,
    schema_types,
)
from switchboard_engine.understanding.toolspec import ToolSpec

#: Longest spoken field value read out from a tool result (characters).
MAX_VALUE_CHARS = 80
#: First sentence before a lookup ("Sure, one moment. Let me check order 1042.").
HOLD_LINE = "Sure, one moment."
#: Lines the engine says verbatim often enough to synthesise ahead (TTS cache warm-up).
COMMON_LINES = (
    HOLD_LINE,
    "Okay, one moment.",
    "Sorry, I didn't catch that.",
    "Could you say it again?",
    "You're welcome!",
    "Goodbye!",
    "Hello!",
    "How can I help you today?",
    "Are you still there?",
    "Sure, take your time.",
    "You're being transferred now.",
    "Please hold.",
)


def humanize_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value)
        if m:
            try:
                d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                return f"{d.strftime('%B')} {d.day}"
            except ValueError:
                return value
        return value[:MAX_VALUE_CHARS]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(humanize_value(v) for v in value[:5])
    if isinstance(value, dict):
        return ", ".join(f"{label_of(k)} {humanize_value(v)}" for k, v in list(value.items())[:3])
    return str(value)


def subject_of(tool: ToolSpec, args: Mapping[str, Any], result: Mapping[str, Any] | None) -> str:
    """ "order 1042" from the identifying argument (or the result's id)."""
    for name, value in args.items():
        if name.endswith(("_id", "_number")) and isinstance(value, str | int):
            return f"{label_of(name)} {value}"
    if result:
        for key, value in result.items():
            if key.endswith("_id") and key != "account_id" and isinstance(value, str | int):
                return f"{label_of(key)} {value}"
    return "that"


def ask_text(tool: ToolSpec, name: str, ctx: Context) -> str:
    schema = tool.properties.get(name, {})
    types = schema_types(schema)
    label = label_of(name)
    pattern = str(schema.get("pattern") or "")
    if re.fullmatch(r"\^?\[0-9\]\{?[\d,]*\}?\$?|\^?\\d\+?\$?|\^\[0-9\]\{\d+,\d+\}\$", pattern):
        return f"What's the {label} number?"
    if name.endswith("_id"):
        return f"What's your {label} ID?" if label == "account" else f"What's the {label} ID?"
    if "integer" in types or "number" in types:
        return (
            "How many would you like?"
            if name in ("quantity", "count", "amount")
            else (f"What {label} would you like?")
        )
    if schema.get("format") == "date" or name.endswith("date"):
        return f"What {label} would you like?"
    if schema.get("format") == "time" or name.endswith("time"):
        return "What time would you like?"
    if "boolean" in types:
        return f"{label_of(name).capitalize()}: yes or no?"
    cands = candidates(name, schema, tool, ctx)
    if cands:
        return (
            f"Who would you like to talk to: {or_list(cands)}?"
            if tool.kind == "transfer"
            else (f"Which {label}: {or_list(cands)}?")
        )
    if is_phone(name, schema):
        return "What's the phone number?"
    verb = "order" if "order" in tool.name else "get"
    return f"What would you like to {verb}?" if label == "item" else f"What's the {label}?"


def or_list(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def describe_args(tool: ToolSpec, args: Mapping[str, Any]) -> str:
    """ "2 coffee grinders" / "order 1042" for a confirmation question."""
    qty = next(
        (v for k, v in args.items() if k in ("quantity", "count") and isinstance(v, int)), None
    )
    item = next((v for k, v in args.items() if k in ("item", "product", "name")), None)
    if item is not None:
        return f"{item}, quantity {qty}" if qty is not None else str(item)
    parts = [f"{label_of(k)} {humanize_value(v)}" for k, v in args.items() if k != "reason"]
    return ", ".join(parts) or tool.name.replace("_", " ")


def abilities(tools: Iterable[ToolSpec]) -> str:
    """ "I can get the status of an order, place a new order or transfer you to a person."."""
    phrases: list[str] = []
    for t in tools:
        if t.kind == "hangup" or not t.description:
            continue
        first = re.split(r"[.;:(]| by | when | if ", t.description, maxsplit=1)[0].strip()
        first = re.sub(r"(?i)\bthe caller's\b", "your", first)
        first = re.sub(r"(?i)\bthe caller\b", "you", first)
        first = re.sub(r"(?i)\bcaller\b", "you", first)
        if first:
            phrases.append(first[0].lower() + first[1:])
    if not phrases:
        return "I can take a message."
    return f"I can {or_list(phrases)}."


_VERBS = frozenset({"get", "lookup", "look", "find", "check", "fetch", "read", "show", "up"})
_MAKERS = frozenset({"create", "place", "make", "add", "new", "book", "submit"})


def scope(tools: Iterable[ToolSpec]) -> str:
    """One short sentence of what the line does, from the tools' names ("I can help with
    order status, new orders, your customer account or a transfer to a person.")."""
    parts: list[str] = []
    for t in tools:
        if t.kind == "hangup":
            continue
        if t.kind == "transfer":
            parts.append("putting you through to a person")
            continue
        words = [w for w in re.split(r"[_\-\s]+", t.name.lower()) if w]
        if words and words[0] in _MAKERS:
            noun = " ".join(words[1:]) or "request"
            parts.append(f"new {noun}s" if not noun.endswith("s") else f"new {noun}")
            continue
        rest = [w for w in words if w not in _VERBS]
        if rest and rest[0] in ("customer", "account", "user", "profile"):
            parts.append("your account details")
        elif rest:
            parts.append(" ".join(rest))
    if not parts:
        return "I can take a message."
    return f"I can help with {or_list(parts)}."


def read_result(tool: ToolSpec, args: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """A generic spoken answer that reads a tool result's fields ("Order 1042 is
    shipped. Delivery date: November 24.")."""
    if tool.kind == "hangup":
        return ""  # the goodbye was said before the call; the line closes now
    if tool.kind == "transfer":
        return "You're being transferred now. Please hold."
    subject = subject_of(tool, args, data)
    if data.get("found") is False:
        return f"I'm sorry, I couldn't find {subject}. Could you check the number?"
    skip = {"ok", "found", "status", "error"}
    details: list[tuple[int, str, str]] = []
    flags: list[str] = []
    for key, value in data.items():
        if key in skip or key.endswith(("_ms", "_at", "_masked")) or key in args:
            continue
        if key.endswith("_id") and not isinstance(value, bool):
            continue
        if isinstance(value, bool):
            if value and key.endswith("ed"):
                flags.append(key.replace("_", " "))
            continue
        if (
            value is None
            or value == ""
            or (isinstance(value, str) and ("*" in value or "•" in value))
        ):
            continue
        if key in ("phone", "email"):
            continue
        rank = (
            0
            if re.search(r"date|eta|arriv|deliver", key)
            else 1
            if key in ("name", "item", "title")
            else 2
        )
        details.append((rank, label_of(key), humanize_value(value)))
    details.sort(key=lambda d: d[0])
    parts: list[str] = []
    subj = subject[0].upper() + subject[1:]
    if flags:
        done = flags[0]
        parts.append(f"{subj} has been {done}." if subject != "that" else f"Done: {done}.")
    elif "status" in data and isinstance(data["status"], str):
        parts.append(f"{subj} is {data['status']}.")
    elif "name" in data and tool.kind == "lookup":
        parts.append(f"I found the account for {humanize_value(data['name'])}.")
        details = [d for d in details if d[1] != "name"]
    else:
        parts.append(
            f"Here's what I found for {subject}." if subject != "that" else "Here's what I found."
        )
    parts += [f"{label[0].upper()}{label[1:]}: {value}." for _, label, value in details[:2]]
    return " ".join(parts)
