"""Contact import: good rows kept, bad rows reported by row number."""

from __future__ import annotations

import orjson
import pytest

from app.dialer.contacts import parse_contacts, parse_csv, parse_json
from app.errors import ImportFormatError

CSV = """phone,timezone,first_name,appointment
+15555550101,America/New_York,Ann,Tuesday 3 PM
not-a-number,America/New_York,Bob,Wednesday
+15555550103,Mars/Olympus,Cy,Thursday
(555) 555-0104,America/Chicago,Di,Friday
+15555550101,America/New_York,Ann again,Monday

+4420 7946 0958,,Ed,Monday
+15555550107,Europe/London
"""


def test_csv_rows_are_numbered_like_a_spreadsheet() -> None:
    parsed = parse_csv(CSV, default_tz=None)
    good = {row: c for row, c in parsed.contacts}
    assert sorted(good) == [2, 5]
    assert good[2].phone == "+15555550101" and good[2].variables == {
        "first_name": "Ann",
        "appointment": "Tuesday 3 PM",
    }
    assert good[5].phone == "+15555550104" and good[5].timezone == "America/Chicago"
    errors = {e.row: (e.field, e.message) for e in parsed.errors}
    assert errors[3][0] == "phone" and "malformed" in errors[3][1]
    assert errors[4][0] == "timezone" and "Mars/Olympus" in errors[4][1]
    assert errors[6][0] == "phone" and "row 2" in errors[6][1]  # duplicate of row 2
    assert errors[8][0] == "timezone" and "missing" in errors[8][1]  # blank line 7 skipped
    assert errors[9][0] is None and "columns" in errors[9][1]
    assert parsed.error_count == 5
    # No error message repeats a raw number.
    assert not any("555" in e.message for e in parsed.errors)


def test_default_timezone_fills_blank_cells() -> None:
    parsed = parse_csv("phone,tz\n+442079460958,\n", default_tz="Europe/London")
    ((row, contact),) = parsed.contacts
    assert (row, contact.timezone) == (2, "Europe/London")


def test_json_list_or_object_with_nested_or_flat_variables() -> None:
    doc = {
        "contacts": [
            {"phone": "+15555550101", "timezone": "UTC", "variables": {"first_name": "Ann"}},
            {"phone": "+15555550102", "timezone": "UTC", "first_name": "Bob", "visits": 3},
            {"phone": "+1555", "timezone": "UTC"},
            "not an object",
            {"phone": "+15555550105", "timezone": "UTC", "Bad Name": "x"},
            {"phone": "+15555550106", "timezone": "UTC", "nested": {"no": 1}},
        ]
    }
    parsed = parse_json(orjson.dumps(doc))
    assert [(r, c.variables) for r, c in parsed.contacts] == [
        (1, {"first_name": "Ann"}),
        (2, {"first_name": "Bob", "visits": "3"}),
    ]
    assert [e.row for e in parsed.errors] == [3, 4, 5, 6]


def test_whole_file_errors() -> None:
    with pytest.raises(ImportFormatError, match="no phone column"):
        parse_csv("name,tz\nAnn,UTC\n")
    with pytest.raises(ImportFormatError, match="invalid JSON"):
        parse_json(b"{")
    with pytest.raises(ImportFormatError, match="more than 2 rows"):
        parse_csv("phone,tz\n+15555550101,UTC\n+15555550102,UTC\n+15555550103,UTC\n", max_rows=2)
    with pytest.raises(ImportFormatError, match="unknown format"):
        parse_contacts(b"", "xml")
    with pytest.raises(ImportFormatError, match="UTF-8"):
        parse_contacts(b"\xff\xfe", "csv")


def test_long_variable_values_are_rejected() -> None:
    parsed = parse_csv("phone,tz,note\n+15555550101,UTC," + "x" * 400 + "\n")
    (err,) = parsed.errors
    assert err.row == 2 and err.field == "variables"
