"""Word error rate for the engine bench: both sides normalised, then word-level edits."""

from __future__ import annotations


def normalise(text: str) -> list[str]:
    """Words for WER scoring: lower case, contractions expanded, punctuation dropped,
    every number as digits."""
    from switchboard_engine.numbers import find_numbers, tokens
    from switchboard_engine.understanding import expand

    words = tokens(expand(text))
    out: list[str] = []
    spans = {n.start: n for n in find_numbers(words)}
    i = 0
    while i < len(words):
        if i in spans:
            out.append(spans[i].digits)
            i = spans[i].end
            continue
        if words[i] != "+":
            out.append(words[i])
        i += 1
    return out


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]
