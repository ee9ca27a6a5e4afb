"""Deterministic, explainable understanding: caller text + the session's tools → a decision.

No language model. Every decision is a pure function of the transcript, the session's
``tools`` (name, description, JSON Schema; docs/protocols.md §1 "Session"), optional flow
hints (example phrases, synonyms, reply templates: ``flows.ToolHints``) and the dialogue
state, and carries a human-readable ``reason`` plus the per-intent scores.

One concept per module, each building on the ones before it:

- :mod:`~switchboard_engine.understanding.normalize`: text → tokens, numbers and concept tokens.
- :mod:`~switchboard_engine.understanding.toolspec`: a function tool as declared, plus flow hints.
- :mod:`~switchboard_engine.understanding.slots`: argument values from an utterance by JSON Schema.
- :mod:`~switchboard_engine.understanding.intents`: one intent per tool plus small talk, and how
  an utterance scores against each.
- :mod:`~switchboard_engine.understanding.replies`: what the engine says (questions,
  confirmations, answers to tool results).
- :mod:`~switchboard_engine.understanding.hearing`: :class:`Heard` (how an utterance was
  heard through speech) and the doubt about its numbers (when to read back, what next).
- :mod:`~switchboard_engine.understanding.dialogue`: :class:`Understanding`, the per-conversation
  decision maker (best intent, pending arguments, confirmations).

The names below are re-exported so ``from switchboard_engine.understanding import …`` keeps
working.
"""

from __future__ import annotations

from switchboard_engine.understanding.dialogue import (
    MAX_ASKS,
    MIN_MARGIN,
    MIN_SCORE,
    SWITCH_SCORE,
    Decision,
    Pending,
    Understanding,
)
from switchboard_engine.understanding.hearing import (
    CONFIRM_BELOW,
    NUMBER_SURE,
    TRANSCRIPT_SURE,
    Heard,
)
from switchboard_engine.understanding.intents import (
    CHAT,
    FREE_TEXT_BONUS,
    SLOT_BONUS,
    ChatIntent,
    IntentIndex,
    IntentScore,
    first_sentence,
)
from switchboard_engine.understanding.normalize import (
    LEXICON,
    NUM,
    PHRASES,
    STOP_WORDS,
    Analysis,
    analyse,
    concept,
    expand,
    stem,
)
from switchboard_engine.understanding.replies import COMMON_LINES, HOLD_LINE, MAX_VALUE_CHARS
from switchboard_engine.understanding.slots import (
    Context,
    context_from_instructions,
    fill_arguments,
    is_free_text,
    strict_fits,
)
from switchboard_engine.understanding.toolspec import ToolSpec

__all__ = [
    "CHAT",
    "COMMON_LINES",
    "CONFIRM_BELOW",
    "FREE_TEXT_BONUS",
    "HOLD_LINE",
    "LEXICON",
    "MAX_ASKS",
    "MAX_VALUE_CHARS",
    "MIN_MARGIN",
    "MIN_SCORE",
    "NUM",
    "NUMBER_SURE",
    "PHRASES",
    "SLOT_BONUS",
    "STOP_WORDS",
    "SWITCH_SCORE",
    "TRANSCRIPT_SURE",
    "Analysis",
    "ChatIntent",
    "Context",
    "Decision",
    "Heard",
    "IntentIndex",
    "IntentScore",
    "Pending",
    "ToolSpec",
    "Understanding",
    "analyse",
    "concept",
    "context_from_instructions",
    "expand",
    "fill_arguments",
    "first_sentence",
    "is_free_text",
    "stem",
    "strict_fits",
]
