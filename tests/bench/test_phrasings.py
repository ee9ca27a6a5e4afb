"""The phrasing bench's scoring: a wrong order number acted on is counted and listed; one
read back for a yes/no is not (the caller says "no")."""

from __future__ import annotations

from bench.phrasings import Score, _understanding, judge
from switchboard_engine.understanding import Heard

CASE = {"text": "Where is order 1042?", "tool": "get_order_status", "args": {"order_id": "1042"}}


def test_a_wrong_number_acted_on_is_counted_and_listed() -> None:
    u = _understanding("support")()
    score = Score()
    judge(CASE, u.decide("Where is order 1043?"), score, "Where is order 1043?", u)
    assert (score.wrong_number_acted, score.right, score.read_backs) == (1, 0, 0)
    assert len(score.wrong_numbers) == 1
    assert "looked up '1043', expected '1042'" in score.wrong_numbers[0]


def test_a_doubtful_wrong_number_is_read_back_not_acted_on() -> None:
    u = _understanding("support")()
    score = Score()
    heard = Heard(0.9, (("1043", 0.3),))  # the number's tokens were not sure
    d = u.decide("Where is order 1043?", heard=heard)
    assert (d.action, d.confirming) == ("ask", "order_id")
    assert d.say == "I heard order 1 0 4 3. Is that right?"
    judge(CASE, d, score, "Where is order 1043?", u)
    assert (score.wrong_number_acted, score.read_backs, score.right) == (0, 1, 0)
    assert score.wrong_numbers == []


def test_a_read_back_of_the_right_number_is_confirmed_and_scored_right() -> None:
    u = _understanding("support")()
    score = Score()
    d = u.decide("Where is order 1042?", heard=Heard(0.9, (("1042", 0.3),)))
    judge(CASE, d, score, "Where is order 1042?", u)
    assert (score.right, score.read_backs, score.wrong_number_acted) == (1, 1, 0)
