"""Intents and their scores: one intent per function tool plus built-in small talk.

A tool's bag of words comes from its name and examples/synonyms (weight 1.0) and its
description and parameter names/descriptions (weight 0.5). Each token ``t`` weighs
``idf(t) = ln(1 + N / df(t))`` over the N intents, so words every tool shares count little.

**Score** of an intent for an utterance U (0..1, then a bonus)::

    example = max over examples e of  Σ w(t), t ∈ e ∩ U  /  Σ w(t), t ∈ e
    keyword = Σ w(t)·field(t), t ∈ U ∩ bag  /  Σ w(t), t ∈ U
    score   = 0.5·example + 0.5·keyword + 0.3 if U holds a value that fits a *required*
              argument with a strict schema (pattern, range, enum, format) of that tool
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from switchboard_engine.understanding.normalize import (
    DISCOURSE,
    DISCOURSE_WEIGHT,
    NUM,
    Analysis,
    analyse,
)
from switchboard_engine.understanding.slots import Context, is_free_text, strict_fits
from switchboard_engine.understanding.toolspec import ToolSpec

#: Bonus for a value in the utterance that fits a required, strictly typed argument.
SLOT_BONUS = 0.3
#: Bonus for words no intent knows when the tool takes a required free-text argument.
FREE_TEXT_BONUS = 0.15
#: Field weights in a tool's bag of words.
W_NAME, W_EXAMPLE, W_DESCRIPTION = 1.0, 1.0, 0.5


@dataclass(frozen=True, slots=True)
class ChatIntent:
    """Built-in small talk: examples and the (short) answer."""

    name: str
    examples: tuple[str, ...]
    answer: str


CHAT: tuple[ChatIntent, ...] = (
    ChatIntent(
        "greeting",
        ("hello", "hi", "hi there", "hey", "good morning", "good afternoon", "good evening"),
        "Hello! {offer}",
    ),
    ChatIntent(
        "how_are_you",
        ("how are you", "how are you doing", "how is it going"),
        "I'm doing well, thanks for asking. {offer}",
    ),
    ChatIntent(
        "thanks",
        ("thank you", "thanks", "thanks a lot", "I appreciate it"),
        "You're welcome! Is there anything else I can help with?",
    ),
    ChatIntent(
        "identity",
        ("who are you", "who am I speaking with", "are you a robot", "what is your name"),
        "I'm {company}automated phone assistant. {offer}",
    ),
    ChatIntent(
        "capabilities",
        ("what can you do", "what can you help me with", "what are my options"),
        "{abilities} What would you like to do?",
    ),
    ChatIntent("repeat", ("can you repeat that", "say that again", "pardon"), "{last}"),
    ChatIntent(
        "hold", ("hold on", "one moment", "just a second"), "Sure, take your time. I'm here."
    ),
    ChatIntent("ack", ("okay", "ok", "alright", "I see"), "Okay. {offer}"),
    ChatIntent(
        "offtopic",
        (
            "do you go abroad",
            "how is the weather",
            "what are your hours",
            "can I get a refund",
            "can I pay with paypal",
            "what is the price",
            "do you have a store",
            "tell me a joke",
            "are you hiring",
            "do you sell gift cards",
            "what is the capital",
        ),
        "Sorry, I can't help with that on this line. {scope}",
    ),
    ChatIntent(
        "nevermind",
        ("never mind", "forget it", "cancel that"),
        "Okay, never mind. What else can I help with?",
    ),
)


#: Built-in phone talk a tool earns by what it is about: a tool whose name holds the
#: key concept also gets these example phrases (late orders are status questions; the
#: caller's address or email is their account; a manager is a person; "I'm done" ends).
FAMILIES: Mapping[str, tuple[str, ...]] = {
    "status": ("my order is late", "my order has not arrived"),
    "customer": ("what address do you have", "what email do you have", "my account details"),
    "transfer": ("manager please", "customer service"),
    "end": ("I am done", "that is all"),
}


@dataclass(slots=True)
class _Intent:
    name: str
    kind: Literal["tool", "chat"]
    examples: list[list[str]]
    bag: dict[str, float]
    texts: list[str]
    tool: ToolSpec | None = None
    chat: ChatIntent | None = None


@dataclass(frozen=True, slots=True)
class IntentScore:
    """Why an intent scored what it did: components and the tokens that matched."""

    name: str
    score: float
    example: float
    keyword: float
    bonus: float
    matched: tuple[str, ...]
    best_example: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "intent": self.name,
            "score": round(self.score, 3),
            "example": round(self.example, 3),
            "keyword": round(self.keyword, 3),
            "bonus": round(self.bonus, 3),
            "matched": list(self.matched),
            "best_example": self.best_example,
        }


def first_sentence(text: str) -> str:
    """The first sentence of a tool description (what it does, before how to use it)."""
    return re.split(r"(?<=[.;:!?])\s|\(", text, maxsplit=1)[0].strip()


def _schema_words(schema: Mapping[str, Any]) -> list[str]:
    text = str(schema.get("description") or "")
    return analyse(text).concepts


_META = re.compile(
    r"(?i)\b(returns?|use it|tell the caller|never read|say goodbye first|the line is "
    r"closed)\b[^.]*\.?"
)


class IntentIndex:
    """Scores utterances against the session's tools and the built-in chat intents."""

    def __init__(self, tools: Sequence[ToolSpec], chat: Sequence[ChatIntent] = CHAT) -> None:
        self.tools = {t.name: t for t in tools}
        intents: list[_Intent] = []
        for tool in tools:
            bag: dict[str, float] = {}

            def add(tokens: Iterable[str], weight: float, bag: dict[str, float] = bag) -> None:
                for tok in tokens:
                    bag[tok] = max(bag.get(tok, 0.0), weight)

            add(analyse(tool.name.replace("_", " ").replace("-", " ")).concepts, W_NAME)
            # Descriptions talk to a model ("Returns …", "Tell the caller …"): those
            # sentences say nothing about what a caller asks for, so they are dropped.
            add(analyse(_META.sub(" ", tool.description)).concepts, W_DESCRIPTION)
            for pname, pschema in tool.properties.items():
                add(analyse(pname.replace("_", " ")).concepts, W_DESCRIPTION)
                add(_schema_words(pschema), W_DESCRIPTION)
            named = set(analyse(tool.name.replace("_", " ").replace("-", " ")).concepts)
            extra = [
                e
                for key, phrases in FAMILIES.items()
                if key in named and (key != "end" or tool.kind == "hangup")
                for e in phrases
            ]
            examples = [analyse(e).concepts for e in (*tool.examples, *extra)]
            for ex in examples:
                add(ex, W_EXAMPLE)
            # The name and the description's first sentence are examples too.
            texts = [*tool.examples, *extra]
            for text in (tool.name.replace("_", " "), first_sentence(tool.description)):
                concepts = analyse(text).concepts
                if concepts and concepts not in examples:
                    examples.append(concepts)
                    texts.append(text)
            for key, words in tool.synonyms.items():
                add(analyse(key).concepts, W_EXAMPLE)
                for w in words:
                    add(analyse(w).concepts, W_EXAMPLE)
            intents.append(_Intent(tool.name, "tool", examples, bag, texts, tool=tool))
        for c in chat:
            examples = [analyse(e).concepts for e in c.examples]
            bag = {}
            for ex in examples:
                for tok in ex:
                    bag[tok] = W_EXAMPLE
            intents.append(
                _Intent(f"chat:{c.name}", "chat", examples, bag, list(c.examples), chat=c)
            )
        self.intents = intents
        n = len(intents)
        df: dict[str, int] = {}
        for it in intents:
            for tok in it.bag:
                df[tok] = df.get(tok, 0) + 1
        self._idf = {tok: math.log(1 + n / d) for tok, d in df.items()}
        self._unknown = math.log(1 + n) * 0.5
        #: Id prefixes shown in argument descriptions ("ACME" of "e.g. ACME-1001").
        self.id_prefixes: dict[str, set[str]] = {}
        for tool in tools:
            for schema in tool.properties.values():
                for m in re.finditer(
                    r"\b([A-Z]{2,10})-\d{2,10}\b", str(schema.get("description") or "")
                ):
                    self.id_prefixes.setdefault(m.group(1).lower(), set()).add(tool.name)

    def weight(self, token: str) -> float:
        """idf weight of a concept token (unknown words weigh half the rarest known one;
        discourse markers such as "okay" or "great" a third of that)."""
        w = self._idf.get(token, self._unknown)
        return w * DISCOURSE_WEIGHT if token in DISCOURSE else w

    def _for_tool(self, a: Analysis, tool: str) -> Analysis:
        """``a`` without the numbers that belong to an id of another tool ("acme 1001")."""
        keep = [
            n
            for n in a.numbers
            if not (
                n.start > 0
                and a.words[n.start - 1] in self.id_prefixes
                and tool not in self.id_prefixes[a.words[n.start - 1]]
            )
        ]
        if len(keep) == len(a.numbers):
            return a
        return Analysis(a.text, a.words, keep, a.concepts)

    def score(self, analysis: Analysis, context: Context) -> list[IntentScore]:
        """Every intent's score for ``analysis``, best first (ties: declaration order)."""
        utt = list(dict.fromkeys(analysis.concepts))
        total = sum(self.weight(t) for t in utt)
        unknown = [t for t in utt if t not in self._idf and t != NUM]
        out: list[IntentScore] = []
        for it in self.intents:
            best_ex, best_text = 0.0, None
            for i, ex in enumerate(it.examples):
                denom = sum(self.weight(t) for t in set(ex))
                if denom <= 0:
                    continue
                cov = sum(self.weight(t) for t in set(ex) if t in utt) / denom
                if cov > best_ex:
                    best_ex, best_text = cov, it.texts[i]
            matched = tuple(t for t in utt if t in it.bag)
            kw = sum(self.weight(t) * it.bag[t] for t in matched) / total if total else 0.0
            bonus = 0.0
            if it.tool is not None:
                fits = strict_fits(it.tool, self._for_tool(analysis, it.tool.name), context)
                if fits:
                    bonus = SLOT_BONUS
                    matched += tuple(f"{name}={value}" for name, value in fits.items())
                elif unknown and any(is_free_text(it.tool, n) for n in it.tool.required):
                    bonus = FREE_TEXT_BONUS
                    matched += tuple(f"text:{w}" for w in unknown)
            score = 0.5 * best_ex + 0.5 * kw + bonus
            out.append(IntentScore(it.name, score, best_ex, kw, bonus, matched, best_text))
        order = {it.name: i for i, it in enumerate(self.intents)}
        out.sort(key=lambda s: (-s.score, order[s.name]))
        return out
