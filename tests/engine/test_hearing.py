"""How a transcription is decided: per-number confidence and the beam's other hypotheses
(switchboard_engine.agent.decide_heard, heard_of) on the demo flow's real understanding."""

from __future__ import annotations

from switchboard_engine.agent import decide_heard, heard_of
from switchboard_engine.asr import Transcript

from .test_understanding import support


def _transcript(text: str, probs: list[float], alternatives: tuple[str, ...] = ()) -> Transcript:
    pieces = tuple(
        zip([w + " " for w in text.split(" ")[:-1]] + text.split(" ")[-1:], probs, strict=True)
    )
    return Transcript(text, 2000.0, 100.0, 0.95, pieces, alternatives)


def test_a_number_is_as_sure_as_its_least_sure_token() -> None:
    t = _transcript("Where is order 1042?", [0.99, 0.99, 0.99, 0.4])
    assert heard_of(t).numbers == (("1042", 0.4),)
    assert t.span_confidence(0, 5) == 0.99


def test_an_unclear_top_hypothesis_gives_way_to_one_that_asks_or_calls() -> None:
    t = _transcript("Hmm, wobble.", [0.9, 0.9], ("Where is order 2904?",))
    d = decide_heard(support(), t)
    # The alternative's number has no token probabilities: read back, never acted on.
    assert (d.action, d.confirming, d.arguments) == ("ask", "order_id", {"order_id": "2904"})


def test_an_understood_top_hypothesis_is_kept() -> None:
    t = _transcript("Can I talk to a person?", [0.95] * 6, ("Can I order a person?",))
    d = decide_heard(support(), t)
    assert (d.action, d.tool) == ("call", "transfer_call")


def test_understood_is_what_the_vocabulary_retry_keys_on() -> None:
    from switchboard_engine.agent import understood

    assert understood(support(), _transcript("Can I talk to a person?", [0.95] * 6))
    assert understood(support(), _transcript("Thanks.", [0.95]))  # a known chat intent
    assert not understood(support(), _transcript("Hmm, wobble.", [0.9, 0.9]))
    # Not understood itself, but a beam hypothesis asks: no second transcription needed.
    t = _transcript("Hmm, wobble.", [0.9, 0.9], ("Where is order 2904?",))
    assert understood(support(), t)


def test_a_reading_heard_with_the_vocabulary_prompt_is_never_sure_of_its_numbers() -> None:
    from switchboard_engine.agent import unsure

    t = _transcript("Where is order 1042?", [0.99] * 4)
    assert decide_heard(support(), t).action == "call"
    d = decide_heard(support(), unsure(t))
    assert (d.action, d.confirming) == ("ask", "order_id")
