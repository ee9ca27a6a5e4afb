"""What a call's records hold, built and checked before any I/O: stream entries
(transcript, routing, tools, events), hash values and the usage of one response.

Every builder masks phone numbers (``app.phone.mask``; numbers inside text through
``redact_numbers``) so no raw number reaches Redis, and raises ``StoreError`` for
values that cannot be stored. Used by ``app.store.calls.CallStore`` and by a live call's
``app.store.recorder.CallRecorder``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from redis.typing import EncodableT, FieldT

from app.errors import StoreError
from app.phone import is_e164, mask

#: Usage counters kept on the call hash, in the order ``add_usage`` writes them.
USAGE_FIELDS = (
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "cached_tokens",
)

#: Raw-number field names refused by ``update_call``/``extra`` so numbers never land in Redis.
FORBIDDEN_FIELDS = frozenset({"from", "to", "from_number", "to_number", "caller", "called"})

HashValue = str | int | float | bool | None
Entry = dict[FieldT, EncodableT]


def encode(field: str, value: HashValue) -> str | int | float:
    """``value`` as a hash field holds it (``bool`` → ``"1"``/``"0"``); ``StoreError``
    for another type (``None`` means "delete" to the callers, never a value)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return value
    raise StoreError(f"field {field!r}: cannot store a {type(value).__name__} in a call hash")


_NUMBER_IN_TEXT = re.compile(r"\+[1-9][0-9]{6,14}(?![0-9])")


def redact_numbers(text: str) -> str:
    """``text`` with every E.164 number in it masked (``+15555550123`` → ``+155****0123``)."""
    return _NUMBER_IN_TEXT.sub(lambda m: mask(m.group(0)), text)


def usage_amounts(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """``USAGE_FIELDS`` → tokens of one Realtime ``response.usage`` object (``response.done``):
    ``total_tokens``, ``input_tokens``, ``output_tokens``, ``input_token_details.audio_tokens``
    /``cached_tokens``, ``output_token_details.audio_tokens``; missing or non-integer values
    count 0."""
    usage = usage or {}
    in_details = usage.get("input_token_details") or {}
    out_details = usage.get("output_token_details") or {}
    if not isinstance(in_details, Mapping):
        in_details = {}
    if not isinstance(out_details, Mapping):
        out_details = {}
    return {
        "total_tokens": _usage_int(usage.get("total_tokens")),
        "input_tokens": _usage_int(usage.get("input_tokens")),
        "output_tokens": _usage_int(usage.get("output_tokens")),
        "input_audio_tokens": _usage_int(in_details.get("audio_tokens")),
        "output_audio_tokens": _usage_int(out_details.get("audio_tokens")),
        "cached_tokens": _usage_int(in_details.get("cached_tokens")),
    }


def _usage_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def transcript_entry(
    *, role: str, text: str, item_id: str, offset_ms: int, interrupted: bool
) -> Entry:
    """A ``transcript`` stream entry; ``offset_ms`` is from the start of the call.

    Raises ``ValueError`` for a ``role`` other than ``user``/``assistant``.
    """
    if role not in ("user", "assistant"):
        raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")
    return {
        "role": role,
        "text": text,
        "item_id": item_id,
        "offset_ms": int(offset_ms),
        "interrupted": "1" if interrupted else "0",
    }


def routing_entry(*, flow: str, reason: str, target: str, at_ms: int) -> Entry:
    """A ``routing`` stream entry: flow picked and why, or a transfer and its target.

    ``target`` is a name or a number; an E.164 number is stored masked (``+155****9999``)
    like every number in Redis.
    """
    return {
        "flow": flow,
        "reason": reason,
        "target": mask(target) if is_e164(target.strip()) else target,
        "at_ms": int(at_ms),
    }


def tool_call_entry(
    *,
    name: str,
    call_id: str,
    arguments: str,
    result: Mapping[str, Any],
    error: str | None,
    duration_ms: float,
    at_ms: int,
) -> Entry:
    """A ``tools`` stream entry; ``result`` as JSON, ``error`` "" when None.

    ``arguments`` is the raw JSON string the model sent. E.164 numbers in ``arguments``
    and ``result`` are masked (``redact_numbers``). Raises ``StoreError`` when ``result``
    is not JSON-serialisable.
    """
    try:
        result_json = redact_numbers(orjson.dumps(result).decode())
    except TypeError as exc:
        raise StoreError(f"tool result for {name!r} is not JSON-serialisable") from exc
    return {
        "name": name,
        "call_id": call_id,
        "arguments": redact_numbers(arguments),
        "result": result_json,
        "error": error or "",
        "duration_ms": round(float(duration_ms), 3),
        "at_ms": int(at_ms),
    }


def event_entry(*, kind: str, fields: Mapping[str, str | int], at_ms: int) -> Entry:
    """An ``events`` stream entry: ``kind``, ``at_ms`` (ms into the call) and ``fields``
    (which may not be named ``kind`` or ``at_ms``, nor carry raw numbers: ``StoreError``;
    E.164 numbers in values are masked)."""
    entry: Entry = {}
    for name, value in fields.items():
        if name in ("kind", "at_ms") or name in FORBIDDEN_FIELDS:
            raise StoreError(f"call event {kind!r}: field {name!r} is not allowed")
        entry[name] = redact_numbers(value) if isinstance(value, str) else int(value)
    entry["kind"] = kind
    entry["at_ms"] = int(at_ms)
    return entry
