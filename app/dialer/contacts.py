"""Contact import from CSV or JSON: good rows are kept, bad rows reported by row number.

CSV: a header row, then one contact per row. Columns ``phone`` (also ``number``,
``phone_number``) and ``timezone`` (also ``tz``); every other column is a template
variable named after its header (lower-cased, e.g. ``first_name``). Row numbers are
file line numbers of the record as a spreadsheet shows them: the header is row 1, the
first contact row 2.

JSON: a list (or ``{"contacts": [...]}``) of objects ``{"phone", "timezone",
"variables": {...}}``; other string fields are variables too. Row numbers are 1-based
list positions.

Rejected per row: malformed numbers, unknown or missing time zones, bad variables and
duplicates (a number already seen earlier in the same file). Duplicates of contacts
already in the campaign are found when the rows are stored (``CampaignStore.add_contacts``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from app.dialer.models import VARIABLE_NAME, Contact, valid_timezone
from app.errors import ImportFormatError
from app.phone import normalize

PHONE_COLUMNS = ("phone", "number", "phone_number")
TZ_COLUMNS = ("timezone", "tz", "time_zone")
#: Errors listed in an import report; the rest are only counted.
MAX_LISTED_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: ``row`` number (see module doc), the ``field`` at fault (or None
    for the whole row) and a message that never contains the raw phone number."""

    row: int
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(slots=True)
class ParsedContacts:
    """Good rows as ``(row, Contact)`` in file order, and the errors of the bad ones."""

    contacts: list[tuple[int, Contact]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0

    def reject(self, row: int, field_name: str | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(RowError(row, field_name, message))


def _first(record: Mapping[str, Any], names: Iterable[str]) -> tuple[str | None, Any]:
    for name in names:
        if name in record:
            return name, record[name]
    return None, None


def _row(
    out: ParsedContacts,
    seen: dict[str, int],
    row: int,
    record: Mapping[str, Any],
    default_tz: str | None,
) -> None:
    """Validate one record and append it to ``out`` (or a ``RowError``)."""
    _, raw_phone = _first(record, PHONE_COLUMNS)
    if raw_phone is None or not str(raw_phone).strip():
        out.reject(row, "phone", "missing phone number")
        return
    try:
        phone = normalize(str(raw_phone))
    except ValueError:
        out.reject(row, "phone", "malformed phone number (not E.164)")
        return
    _, raw_tz = _first(record, TZ_COLUMNS)
    tz = str(raw_tz).strip() if raw_tz not in (None, "") else default_tz
    if not tz:
        out.reject(row, "timezone", "missing time zone (and the campaign has no default)")
        return
    if not valid_timezone(tz):
        out.reject(row, "timezone", f"unknown time zone {tz[:64]!r}")
        return
    variables: dict[str, str] = {}
    nested = record.get("variables")
    if nested is not None:
        if not isinstance(nested, dict):
            out.reject(row, "variables", "variables must be an object")
            return
        variables.update(nested)
    for key, value in record.items():
        if key in PHONE_COLUMNS or key in TZ_COLUMNS or key == "variables":
            continue
        variables[key] = value
    clean: dict[str, str] = {}
    for key, value in variables.items():
        name = str(key).strip().lower()
        if not VARIABLE_NAME.match(name):
            out.reject(row, str(key)[:40], "variable names are lower-case identifiers")
            return
        if value is None:
            value = ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            out.reject(row, name, "variable values must be text or numbers")
            return
        clean[name] = str(value).strip()
    if phone in seen:
        out.reject(row, "phone", f"duplicate number (first seen in row {seen[phone]})")
        return
    try:
        contact = Contact(phone=phone, timezone=tz, variables=clean)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        out.reject(row, loc, str(err["msg"]))
        return
    seen[phone] = row
    out.contacts.append((row, contact))


def parse_csv(
    text: str, *, default_tz: str | None = None, max_rows: int = 100_000
) -> ParsedContacts:
    """Parse CSV ``text`` (see module doc). Raises ``ImportFormatError`` for a missing
    header/phone column or more than ``max_rows`` rows."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFormatError("the CSV file is empty") from None
    except csv.Error as exc:
        raise ImportFormatError(f"unreadable CSV header: {exc}") from None
    names = [h.strip().lower() for h in header]
    if not any(n in PHONE_COLUMNS for n in names):
        raise ImportFormatError("the CSV header has no phone column (phone, number, phone_number)")
    out = ParsedContacts()
    seen: dict[str, int] = {}
    row = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row += 1
            out.reject(row, None, f"unreadable CSV row: {exc}")
            continue
        row = reader.line_num
        if not any(v.strip() for v in values):
            continue  # blank line
        if row - 1 > max_rows:
            raise ImportFormatError(f"more than {max_rows} rows")
        if len(values) != len(names):
            out.reject(row, None, f"expected {len(names)} columns, found {len(values)}")
            continue
        _row(out, seen, row, dict(zip(names, values, strict=True)), default_tz)
    return out


def parse_json(
    data: bytes | str, *, default_tz: str | None = None, max_rows: int = 100_000
) -> ParsedContacts:
    """Parse a JSON contact list (see module doc). Raises ``ImportFormatError`` for
    invalid JSON, a wrong top-level shape or more than ``max_rows`` rows."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ImportFormatError(f"invalid JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("contacts"), list):
        doc = doc["contacts"]
    if not isinstance(doc, list):
        raise ImportFormatError('expected a JSON list of contacts or {"contacts": [...]}')
    if len(doc) > max_rows:
        raise ImportFormatError(f"more than {max_rows} rows")
    out = ParsedContacts()
    seen: dict[str, int] = {}
    for i, item in enumerate(doc, start=1):
        if not isinstance(item, dict):
            out.reject(i, None, "each contact must be an object")
            continue
        _row(out, seen, i, {str(k).strip().lower(): v for k, v in item.items()}, default_tz)
    return out


def parse_contacts(
    data: bytes, fmt: str, *, default_tz: str | None = None, max_rows: int = 100_000
) -> ParsedContacts:
    """Parse ``data`` as ``fmt`` (``csv`` or ``json``; UTF-8). Raises ``ImportFormatError``."""
    if fmt == "json":
        return parse_json(data, default_tz=default_tz, max_rows=max_rows)
    if fmt == "csv":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"the CSV file is not UTF-8: {exc}") from None
        return parse_csv(text, default_tz=default_tz, max_rows=max_rows)
    raise ImportFormatError(f"unknown format {fmt!r} (csv or json)")
