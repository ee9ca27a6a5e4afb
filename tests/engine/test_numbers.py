"""Spoken numbers, dates, times and yes/no in caller transcripts (pure, milliseconds)."""

from __future__ import annotations

import datetime as dt

import pytest

from switchboard_engine.numbers import find_numbers, parse_date, parse_time, parse_yes_no, tokens


def digits(text: str) -> list[str]:
    return [n.digits for n in find_numbers(tokens(text))]


@pytest.mark.parametrize(
    "said",
    [
        "1042",
        "1,042",
        "1 0 4 2",
        "one oh four two",
        "one zero four two",
        "ten forty two",
        "ten forty-two",
        "one thousand forty two",
        "one thousand and forty two",
        "1,000 42",  # how Whisper sometimes writes "one thousand forty two"
        "Well, let's have a thunder one thousand forty two.",  # a real tiny.en transcript
    ],
)
def test_order_number_said_many_ways(said: str) -> None:
    assert digits(said) == ["1042"]


@pytest.mark.parametrize(
    ("said", "want"),
    [
        ("I'd like two coffee grinders", ["2"]),
        ("double oh seven", ["007"]),
        ("ten oh five", ["1005"]),
        ("a hundred and five", ["105"]),
        ("nineteen ninety nine", ["1999"]),
        ("four five six seven", ["4567"]),
        ("$5,580", ["5580"]),
        ("my number is 555 555 0123", ["5555550123"]),
        ("two and a half", ["2"]),
        ("2.5 pounds", ["2.5"]),
        ("order 1042 and 3 mugs", ["1042", "3"]),
        ("oh well", []),
        ("nothing to see", []),
    ],
)
def test_numbers(said: str, want: list[str]) -> None:
    assert digits(said) == want


TODAY = dt.date(2026, 3, 2)  # a Monday


@pytest.mark.parametrize(
    ("said", "want"),
    [
        ("tomorrow", dt.date(2026, 3, 3)),
        ("the day after tomorrow", dt.date(2026, 3, 4)),
        ("next friday", dt.date(2026, 3, 6)),
        ("on monday", dt.date(2026, 3, 9)),
        ("march third", dt.date(2026, 3, 3)),
        ("the 3rd of march", dt.date(2026, 3, 3)),
        ("the twenty first of june", dt.date(2026, 6, 21)),
        ("march 1", dt.date(2027, 3, 1)),  # already past this year
        ("3/14", dt.date(2026, 3, 14)),
        ("2026-05-01", dt.date(2026, 5, 1)),
        ("in two days", dt.date(2026, 3, 4)),
        ("in a week", dt.date(2026, 3, 9)),
        ("some day", None),
    ],
)
def test_dates(said: str, want: dt.date | None) -> None:
    assert parse_date(said, TODAY) == want


@pytest.mark.parametrize(
    ("said", "want"),
    [
        ("3 pm", dt.time(15, 0)),
        ("3pm", dt.time(15, 0)),
        ("at 3:30 p.m.", dt.time(15, 30)),
        ("at ten thirty", dt.time(10, 30)),
        ("half past three", dt.time(3, 30)),
        ("quarter to four in the afternoon", dt.time(15, 45)),
        ("noon", dt.time(12, 0)),
        ("seven in the evening", dt.time(19, 0)),
        ("15:45", dt.time(15, 45)),
        ("I have 3 orders", None),
    ],
)
def test_times(said: str, want: dt.time | None) -> None:
    assert parse_time(said) == want


@pytest.mark.parametrize(
    ("said", "want"),
    [
        ("yes please", True),
        ("yeah, go ahead", True),
        ("sure", True),
        ("of course", True),
        ("no thanks", False),
        ("that's not right", False),
        ("nope", False),
        ("hmm", None),
    ],
)
def test_yes_no(said: str, want: bool | None) -> None:
    assert parse_yes_no(said) is want


@pytest.mark.parametrize(
    ("said", "want"),
    [
        # Whisper writes "10,000 and 1" and "500 and 12" for what was said as one number.
        ("order 10,000 and 1", ["10001"]),
        ("it's 500 and 12", ["512"]),
        ("20,000 and 5", ["20005"]),
        # ... but "and" joins only a round number and one that fits in its zeros.
        ("500 and you", ["500"]),
        ("1042 and 3", ["1042", "3"]),
        ("ten and two", ["10", "2"]),
        # Digits said one at a time, with "oh", "double", "triple", grouped or with commas.
        ("one oh oh four two", ["10042"]),
        ("one oh four two", ["1042"]),
        ("thirty three oh six", ["3306"]),
        ("double one two three", ["1123"]),
        ("triple five one", ["5551"]),
        ("double 719", ["7719"]),
        ("order one of five one", ["1051"]),  # Whisper's "of" for a spoken "oh"
        ("two of them", ["2"]),  # Whisper writes the digits after "double" as one group
        # Whisper's "to"/"do" for a spoken "two" among digits, "20 2" for "twenty two".
        ("order 5, do 0, 8", ["5208"]),
        ("order 20 to 68", ["2268"]),
        ("order 7 to 1 9", ["7219"]),
        ("3 to 5 days", ["3", "5"]),  # ranges stay ranges
        ("20 to 30 minutes", ["20", "30"]),
        ("order 20 two 68", ["2268"]),
        ("20,000 and five", ["20005"]),
        ("1, 0, 4, 2", ["1042"]),
        ("twenty three seventeen", ["2317"]),
        ("two thousand three hundred and seventeen", ["2317"]),
    ],
)
def test_spoken_number_grammar(said: str, want: list[str]) -> None:
    assert [n.digits for n in find_numbers(tokens(said))] == want


@pytest.mark.parametrize(
    ("said", "ambiguous"),
    [
        ("1, 2, 3, 4, 5, 10, 6", True),  # single digits with a "10" among them: a guess
        ("4, 4, 3, 2, 1, 10, 9", True),
        ("4, 4, 3, 2, 1, 1, 0, 9", True),  # eight digits one at a time: read back
        ("double 719", False),
        ("1, 0, 4, 2", False),
        ("10 42", False),
        ("one oh four two", False),
        ("1042", False),
    ],
)
def test_mixed_digit_runs_are_marked_ambiguous(said: str, ambiguous: bool) -> None:
    (span,) = find_numbers(tokens(said))
    assert span.ambiguous is ambiguous
