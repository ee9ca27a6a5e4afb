"""Deterministic, explainable understanding: caller text + the session's tools → a decision.

No language model. Every decision is a pure function of the transcript, the session's
``tools`` (name, description, JSON Schema; protocols.md §1 "Session"), optional flow
hints (example phrases, synonyms, reply templates: ``flows.ToolHints``) and the dialogue
state, and carries a human-readable ``reason`` plus the per-intent scores.

**Text → tokens.** Lower-case; contractions expanded ("what's" → "what is"); multi-word
phrases mapped to one concept (:data:`PHRASES`: "talk to" → ``talkto``, "that's all" →
``finish``); words stemmed (:func:`stem`) and mapped to a concept (:data:`LEXICON`:
representative/agent/person → ``human``); stop words dropped; every number (spoken or
written, see :mod:`app.engine.numbers`) becomes the token ``#num``.

**Intents.** One per function tool, plus built-in small-talk intents (:data:`CHAT`).
A tool's bag of words comes from its name and examples/synonyms (weight 1.0) and its
description and parameter names/descriptions (weight 0.5). Each token ``t`` weighs
``idf(t) = ln(1 + N / df(t))`` over the N intents, so words every tool shares count little.

**Score** of an intent for an utterance U (0..1, then a bonus)::

    example = max over examples e of  Σ w(t), t ∈ e ∩ U  /  Σ w(t), t ∈ e
    keyword = Σ w(t)·field(t), t ∈ U ∩ bag  /  Σ w(t), t ∈ U
    score   = 0.5·example + 0.5·keyword + 0.3 if U holds a value that fits a *required*
              argument with a strict schema (pattern, range, enum, format) of that tool

The best intent wins if its score ≥ :data:`MIN_SCORE` and it leads the runner-up by
:data:`MIN_MARGIN`; otherwise the engine says it did not understand.

**Arguments** are filled from the JSON Schema: digit-pattern strings from numbers,
integers within minimum/maximum, enums and quoted example values (with synonyms),
``format: date/time``, booleans from yes/no, E.164 phones (10 digits → +1…; "my number"
→ the caller's number when the instructions state it), account-like ids ("acme 1001" →
``ACME-1001`` when the description shows that shape), free text (``item``) from the
words left over, ``reason`` from the utterance. A missing *required* argument is asked
for (never guessed) and filled from the next utterance; a tool whose description asks to
confirm first is confirmed with a yes/no question.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.engine.numbers import NumberSpan, find_numbers, parse_date, parse_time, parse_yes_no
from app.engine.numbers import tokens as number_tokens

log = logging.getLogger(__name__)

#: An intent must score at least this (0..1.3) to be chosen.
MIN_SCORE = 0.3
#: ... and lead the runner-up by this much.
MIN_MARGIN = 0.05
#: While an argument is pending, another intent must score this much to take over.
SWITCH_SCORE = 0.6
#: Bonus for a value in the utterance that fits a required, strictly typed argument.
SLOT_BONUS = 0.3
#: Bonus for words no intent knows when the tool takes a required free-text argument.
FREE_TEXT_BONUS = 0.15
#: Field weights in a tool's bag of words.
W_NAME, W_EXAMPLE, W_DESCRIPTION = 1.0, 1.0, 0.5
#: Times the engine asks for the same missing argument before giving up.
MAX_ASKS = 2
#: Longest spoken field value read out from a tool result (characters).
MAX_VALUE_CHARS = 80

NUM = "#num"
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

CONTRACTIONS = {
    "what's": "what is", "where's": "where is", "when's": "when is", "who's": "who is",
    "how's": "how is", "that's": "that is", "it's": "it is", "there's": "there is",
    "let's": "let us", "i'm": "i am", "i'd": "i would", "i'll": "i will", "i've": "i have",
    "you're": "you are", "you've": "you have", "we're": "we are", "they're": "they are",
    "can't": "can not", "won't": "will not", "don't": "do not", "doesn't": "does not",
    "didn't": "did not", "isn't": "is not", "aren't": "are not", "hasn't": "has not",
    "haven't": "have not", "wasn't": "was not", "couldn't": "could not",
    "wouldn't": "would not", "shouldn't": "should not",
}  # fmt: skip

#: Multi-word phrases → one concept token (longest first). Built-in English phone talk.
PHRASES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {
            "who are you": "whoareyou", "who am i speaking with": "whoareyou",
            "who am i talking to": "whoareyou", "who is this": "whoareyou",
            "are you a robot": "whoareyou", "are you a real person": "whoareyou",
            "are you a person": "whoareyou", "are you human": "whoareyou",
            "are you a human": "whoareyou", "are you a machine": "whoareyou",
            "what is your name": "whoareyou",
            "how are you": "howareyou", "how is it going": "howareyou",
            "how are you doing": "howareyou", "how are things": "howareyou",
            "what can you do": "capab", "what can you help": "capab",
            "how can you help": "capab", "what do you do": "capab",
            "what are my options": "capab", "what can i ask": "capab",
            "say that again": "repeat", "come again": "repeat", "did not hear": "repeat",
            "did not catch": "repeat", "what did you say": "repeat", "pardon me": "repeat",
            "hold on": "holdon", "hang on": "holdon", "one moment": "holdon",
            "just a second": "holdon", "just a moment": "holdon", "wait a minute": "holdon",
            "give me a second": "holdon", "one sec": "holdon", "wait a second": "holdon",
            "hang up": "hangup", "end the call": "hangup", "end call": "hangup",
            "that is all": "finish", "that is everything": "finish", "nothing else": "finish",
            "i am done": "finish", "all set": "finish", "that will be all": "finish",
            "that is it": "finish", "i am all good": "finish",
            "good bye": "bye", "bye bye": "bye", "see you": "bye", "take care": "bye",
            "have a nice day": "bye", "have a good day": "bye", "talk to you later": "bye",
            "look up": "lookup", "look me up": "lookup", "look it up": "lookup",
            "pull up": "lookup", "bring up": "lookup",
            "talk to": "talkto", "speak to": "talkto", "speak with": "talkto",
            "talk with": "talkto", "put me through": "talkto", "connect me": "talkto",
            "real person": "human", "live person": "human", "human being": "human",
            "someone real": "human", "a real human": "human",
            "thank you": "thank", "on its way": "ship", "on the way": "ship",
            "never mind": "nevermind", "forget it": "nevermind",
            "new order": "buy", "place an order": "buy", "place order": "buy",
            "on file": "account",
        }.items(),
        key=lambda kv: -len(kv[0]),
    )
)  # fmt: skip

#: Stemmed word → concept (built-in synonyms; flows add their own per tool).
LEXICON = {
    "person": "human", "agent": "human", "representative": "human", "rep": "human",
    "operator": "human", "someone": "human", "somebody": "human", "people": "human",
    "staff": "human", "humans": "human",
    "goodbye": "bye", "farewell": "bye", "byebye": "bye",
    "thank": "thank", "thanks": "thank", "appreciate": "thank",
    "package": "order", "parcel": "order", "shipment": "order",
    "purchas": "buy", "place": "buy",
    "deliver": "ship", "delivery": "ship", "arriv": "ship", "dispatch": "ship",
    "track": "status", "progress": "status", "update": "status",
    "profil": "account", "details": "account", "detail": "account", "record": "account",
    "info": "account", "information": "account",
    "transferr": "transfer", "talkto": "transfer",
    "hello": "hi", "hey": "hi", "morn": "hi", "afternoon": "hi", "evening": "hi",
    "pardon": "repeat", "sorry": "repeat", "find": "lookup", "search": "lookup",
    "okay": "ok", "alright": "ok",
    "sale": "sales",
}  # fmt: skip


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = _words(
    """a an the and or but if of to in at by for with from as is are was were be been am
    i me my mine you your yours we our us they them their it its this that these those
    there here do does did done can could would will shall should may might must have has
    had having please just so very really also too now then well um uh er oh like want
    need let get got make go going some any all what which how again same own into onto
    about over under up down out off on not no yes yeah im would id ill ive know think
    tell use used using return returns returned true false null none caller call calls
    calling e g eg when said says something anything stuff thing things never ever"""
)
#: Discourse markers: they open or pad a sentence more than they carry its meaning.
DISCOURSE = _words("ok great right cool perfect awesome fine good")
DISCOURSE_WEIGHT = 0.3
#: Words that name what a caller wants done, not the thing itself (free-text slots skip them).
REQUEST_WORDS = _words(
    """order orders ordering buy purchase place send get want like need would could can
    i me my you please to a an the some new for of make put give"""
)


def expand(text: str) -> str:
    """Lower-case, straight apostrophes, contractions expanded, punctuation spaced out."""
    low = text.lower().replace("’", "'").replace("‘", "'")
    low = re.sub(r"[a-z]+'[a-z]+", lambda m: CONTRACTIONS.get(m.group(0), m.group(0)), low)
    low = re.sub(r"'s\b", "", low)
    return low


def stem(word: str) -> str:
    """A light suffix stripper: shipped/shipping/ships → ship, delivered → deliver."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, repl in (
        ("ies", "y"), ("ied", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""),
        ("s", ""), ("ly", ""),
    ):  # fmt: skip
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word[-2] in "su":
                return word
            if suffix == "es" and word[-3] not in "sxz":
                word = word[:-1]
                break
            word = word[: -len(suffix)] + repl
            doubled = len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz"
            if suffix in ("ing", "ed") and doubled:
                word = word[:-1]
            break
    return word


def _apply_phrases(words: list[str]) -> list[str]:
    joined = " " + " ".join(words) + " "
    for phrase, concept in PHRASES:
        joined = joined.replace(f" {phrase} ", f" {concept} ")
    return joined.split()


def concept(word: str) -> str:
    """The concept token of one (unstemmed) word."""
    if word in LEXICON:
        return LEXICON[word]
    s = stem(word)
    return LEXICON.get(s, s)


#: Words after which "order" is a verb ("I'd like to order", "we'll order").
_VERB_BEFORE = frozenset({"to", "i", "we", "will", "would", "ll", "d", "and", "also"})


@dataclass(frozen=True, slots=True)
class Analysis:
    """One text, analysed: ``words`` (number tokens), ``numbers`` found in them and the
    ``concepts`` (content tokens) used for scoring."""

    text: str
    words: list[str]
    numbers: list[NumberSpan]
    concepts: list[str]


def analyse(text: str) -> Analysis:
    """Tokens, numbers and concept tokens of ``text`` (see module doc)."""
    words = _apply_phrases(number_tokens(expand(text)))
    numbers = find_numbers(words)
    in_number = {i for n in numbers for i in range(n.start, n.end)}
    plain = [("#n" if i in in_number else w) for i, w in enumerate(words)]
    concepts: list[str] = []
    seen_num = False
    for i, w in enumerate(plain):
        if w in ("order", "orders") and i > 0 and plain[i - 1] in _VERB_BEFORE:
            w = "buy"  # "to order", "I'll order": the verb, not an order that exists
        if w == "#n":
            if not seen_num:
                concepts.append(NUM)
            seen_num = True
            continue
        seen_num = False
        if w in STOP_WORDS or w == "+":
            continue
        c = concept(w)
        if c and c not in STOP_WORDS:
            concepts.append(c)
    return Analysis(text, words, numbers, concepts)


# --- tools and intents ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool as the session declared it, plus optional flow hints.

    ``synonyms``: concept or argument value → other words for it (flow ``tool_hints``).
    ``reply``: template for the spoken answer to its result (``str.format`` fields from
    the result and the call's arguments).
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reply: str | None = None

    @classmethod
    def from_definition(
        cls,
        definition: Mapping[str, Any],
        examples: Iterable[str] = (),
        synonyms: Mapping[str, Iterable[str]] | None = None,
        reply: str | None = None,
    ) -> ToolSpec:
        """From a Realtime ``tools`` entry (``{type, name, description, parameters}``)."""
        params = definition.get("parameters")
        return cls(
            name=str(definition.get("name", "")),
            description=str(definition.get("description") or ""),
            parameters=params if isinstance(params, dict) else {},
            examples=tuple(examples),
            synonyms={k: tuple(v) for k, v in (synonyms or {}).items()},
            reply=reply,
        )

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        props = self.parameters.get("properties")
        if not isinstance(props, dict):
            return {}
        return {str(k): v for k, v in props.items() if isinstance(v, dict)}

    @property
    def required(self) -> list[str]:
        req = self.parameters.get("required")
        props = self.properties
        return [str(r) for r in req if r in props] if isinstance(req, list) else []

    @property
    def kind(self) -> Literal["hangup", "transfer", "lookup", "action"]:
        """What calling it does, read from its name and description."""
        text = f"{self.name} {self.description}".lower()
        if "hang up" in text or re.search(r"\bend[_ ]call\b", text):
            return "hangup"
        if "transfer" in self.name.lower():
            return "transfer"
        if re.match(r"(get|lookup|look_up|find|check|search|list|fetch|read)_?", self.name):
            return "lookup"
        return "action"

    @property
    def confirm_first(self) -> bool:
        """True when the description asks to confirm with the caller before calling."""
        return bool(re.search(r"\bconfirm\b", self.description, re.IGNORECASE))


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
        "nevermind",
        ("never mind", "forget it", "cancel that"),
        "Okay, never mind. What else can I help with?",
    ),
)


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
            examples = [analyse(e).concepts for e in tool.examples]
            for ex in examples:
                add(ex, W_EXAMPLE)
            # The name and the description's first sentence are examples too.
            texts = list(tool.examples)
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


# --- context and slot values ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Context:
    """Facts the engine may use besides the utterance.

    ``caller_number``: E.164 of the caller when the session's instructions state it;
    ``targets``: transfer target names (a flow's ``transfer_targets``); ``company``: who
    the agent answers for (from the instructions); ``today``: for relative dates.
    """

    today: dt.date = field(default_factory=lambda: dt.date(2000, 1, 1))
    caller_number: str | None = None
    company: str | None = None
    targets: tuple[str, ...] = ()
    greeting: str | None = None


_E164_RE = re.compile(r"\+[1-9]\d{6,14}")


def context_from_instructions(
    instructions: str,
    today: dt.date,
    targets: Iterable[str] = (),
    greeting: str | None = None,
) -> Context:
    """Read the caller's number (an E.164 number next to "caller"/"calling from") and the
    company ("agent/assistant for Acme") from session instructions."""
    caller = None
    m = re.search(
        r"(?i)(?:caller|calling from|caller's number|phone)[^+\n]{0,40}(\+[1-9]\d{6,14})",
        instructions,
    )
    if m:
        caller = m.group(1)
    company = None
    c = re.search(
        r"\b(?:agent|assistant|representative) (?:for|at|of) ([A-Z][\w&.'-]*)", instructions
    )
    if c:
        company = c.group(1).rstrip(".")
    return Context(today, caller, company, tuple(targets), greeting)


def _pattern_ok(schema: Mapping[str, Any], value: str) -> bool:
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                return False
        except re.error:
            return False
    min_len, max_len = schema.get("minLength"), schema.get("maxLength")
    if isinstance(min_len, int) and len(value) < min_len:
        return False
    return not (isinstance(max_len, int) and len(value) > max_len)


def _strict_string(schema: Mapping[str, Any]) -> bool:
    """A string schema whose pattern rejects ordinary words (e.g. digits only)."""
    pattern = schema.get("pattern")
    if not isinstance(pattern, str):
        return False
    try:
        return re.search(pattern, "hello") is None and re.search(pattern, "word") is None
    except re.error:
        return False


def _range_ok(schema: Mapping[str, Any], value: float) -> bool:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if isinstance(lo, int | float) and value < lo:
        return False
    return not (isinstance(hi, int | float) and value > hi)


def _types(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type")
    if isinstance(t, list):
        return {str(x) for x in t}
    return {str(t)} if isinstance(t, str) else set()


def _is_phone(name: str, schema: Mapping[str, Any]) -> bool:
    pattern = str(schema.get("pattern") or "")
    return "phone" in name.lower() or pattern.startswith("^\\+")


def _to_e164(digits: str, caller: str | None) -> str | None:
    if len(digits) == 10:
        country = "1"
        if caller and caller.startswith("+") and not caller.startswith("+1"):
            return None
        return f"+{country}{digits}"
    if 11 <= len(digits) <= 15 and digits[0] != "0":
        return f"+{digits}"
    return None


def _label(name: str) -> str:
    """``order_id`` → "order", ``delivery_date`` → "delivery date"."""
    base = re.sub(r"_(id|number|no)$", "", name)
    return base.replace("_", " ").strip()


def _TRANSFER_TARGET(tool: ToolSpec, name: str) -> bool:
    return tool.kind == "transfer" and name in ("target", "to", "destination", "department")


def _candidates(name: str, schema: Mapping[str, Any], tool: ToolSpec, ctx: Context) -> list[str]:
    """Closed set of values a string argument may take: enum, else quoted examples in its
    description plus the flow's transfer targets (for a transfer tool's target)."""
    enum = schema.get("enum")
    if isinstance(enum, list):
        return [str(v) for v in enum]
    values: list[str] = []
    if _TRANSFER_TARGET(tool, name):
        values += list(ctx.targets)
        values += re.findall(r'"([A-Za-z][\w-]{0,30})"', str(schema.get("description") or ""))
        values += re.findall(r'"([A-Za-z][\w-]{0,30})"', tool.description)
    return list(dict.fromkeys(values))


def _value_said(value: str, tool: ToolSpec, a: Analysis) -> bool:
    """True if ``a`` names ``value``: a shared concept, or the value or one of its flow
    synonyms said word for word ("I'll be there" → ``confirmed``)."""
    phrases = [value]
    for key, words in tool.synonyms.items():
        if key.lower() == value.lower():
            phrases += list(words)
    said = f" {' '.join(number_tokens(expand(a.text)))} "
    utt = set(a.concepts)
    for phrase in phrases:
        concepts = set(analyse(phrase).concepts)
        if concepts and concepts & utt:
            return True
        if f" {' '.join(number_tokens(expand(phrase)))} " in said:
            return True
    return False


@dataclass(slots=True)
class _Fill:
    """Argument values found in one utterance and the number spans they used."""

    values: dict[str, Any] = field(default_factory=dict)
    used_numbers: set[int] = field(default_factory=set)
    used_words: set[int] = field(default_factory=set)


def _account_like(schema: Mapping[str, Any], a: Analysis) -> tuple[str, set[int]] | None:
    """ "acme 1001" → "ACME-1001" when the description shows that shape (e.g. ACME-1001)."""
    desc = str(schema.get("description") or "")
    m = re.search(r"\b([A-Z]{2,10})-(\d{2,10})\b", desc)
    if not m:
        return None
    prefix = m.group(1).lower()
    for n in a.numbers:
        if n.start > 0 and a.words[n.start - 1] == prefix and "." not in n.digits:
            value = f"{m.group(1)}-{n.digits}"
            if _pattern_ok(schema, value):
                return value, {n.start - 1, n.start}
    return None


def _number_value(
    name: str, schema: Mapping[str, Any], a: Analysis, fill: _Fill, answer: bool
) -> tuple[Any, int] | None:
    types = _types(schema)
    for idx, n in enumerate(a.numbers):
        if idx in fill.used_numbers:
            continue
        if "integer" in types:
            if "." in n.digits:
                continue
            value: Any = int(n.digits)
        else:
            value = float(n.digits) if "." in n.digits else int(n.digits)
        if not _range_ok(schema, value):
            continue
        return value, idx
    if "integer" in types and not answer:
        # "a coffee grinder", "an espresso machine", "one milk frother": a single one.
        return None
    return None


def _article_one(a: Analysis) -> bool:
    """True when the thing asked for is introduced with "a"/"an" ("buy a grinder",
    or an answer "a milk frother")."""
    verbs = ("buy", "order", "purchase", "get", "want", "need", "for")
    for i, w in enumerate(a.words[:-1]):
        introduces = w in ("a", "an") and a.words[i + 1] not in STOP_WORDS
        if introduces and (i == 0 or a.words[i - 1] in verbs):
            return True
    return False


_LEAD_FILLERS = _words(
    "it is its it's just um uh well so and oh yes yeah sure okay ok i would like want "
    "need to order buy get a an the some please"
)


def _free_text(a: Analysis, tool: ToolSpec, fill: _Fill, answer: bool) -> str | None:
    """The longest run of words that are not request words, numbers or used by another
    argument: "I'd like to order two coffee grinders" → "coffee grinders"."""
    number_idx = {i for n in a.numbers for i in range(n.start, n.end)}
    skip = REQUEST_WORDS | STOP_WORDS | {"buy", "purchase", "order", "new", "place"}
    name_words = set(analyse(tool.name.replace("_", " ")).concepts)
    best: list[str] = []
    run: list[str] = []
    for i, w in enumerate([*a.words, "."]):
        stop = (
            i >= len(a.words)
            or i in number_idx
            or i in fill.used_words
            or w in {"please", "thanks", "thank", "and"}
            or (w in skip and w not in ("of",))
            or concept(w) in name_words
        )
        # "of" joins two content words ("bags of coffee beans").
        if w == "of" and run and i + 1 < len(a.words) and a.words[i + 1] not in skip:
            run.append(w)
            continue
        if stop:
            while run and run[-1] in ("of", "and"):
                run.pop()
            if len(run) > len(best):
                best = run
            run = []
        else:
            run.append(w)
    if not best and answer:
        words = [w for w in a.words if w not in _LEAD_FILLERS]
        best = words
    return " ".join(best) if best else None


def _fill_order(name: str, schema: Mapping[str, Any]) -> int:
    if _strict_string(schema) or _is_phone(name, schema):
        return 0
    if _types(schema) & {"integer", "number", "boolean"} or "format" in schema:
        return 1
    if "enum" in schema:
        return 2
    return 3


def is_free_text(tool: ToolSpec, name: str) -> bool:
    """A plain string argument (no pattern, enum, format or closed set of values) other
    than ``reason``."""
    schema = tool.properties.get(name, {})
    return (
        _types(schema) <= {"string"}
        and not _candidates(name, schema, tool, Context())
        and not _TRANSFER_TARGET(tool, name)
        and _fill_order(name, schema) == 3
        and name != "reason"
        and not name.endswith(("date", "time"))
    )


def fill_arguments(
    tool: ToolSpec, a: Analysis, ctx: Context, *, only: str | None = None, answer: bool = False
) -> dict[str, Any]:
    """Argument values ``a`` states for ``tool`` (all, or ``only`` one).

    ``answer``: the utterance answers a question about ``only``, so a bare value counts
    ("two", "coffee grinder").
    """
    fill = _Fill()
    props = tool.properties
    names = [only] if only is not None else list(props)
    # Strictly typed arguments first, free text last, so free text takes what is left.
    names.sort(key=lambda n: _fill_order(n, props.get(n, {})))
    low = " ".join(a.words)
    for name in names:
        schema = props.get(name)
        if schema is None:
            continue
        types = _types(schema)
        value: Any = None
        fmt = schema.get("format")
        if "boolean" in types:
            value = parse_yes_no(a.text)
        elif "integer" in types or "number" in types:
            got = _number_value(name, schema, a, fill, answer)
            if got is not None:
                value, idx = got
                fill.used_numbers.add(idx)
            elif "integer" in types and (_article_one(a) or (answer and "a" in a.words)):
                value = 1 if _range_ok(schema, 1) else None
        elif fmt == "date" or (fmt is None and name.endswith("date")):
            d = parse_date(a.text, ctx.today)
            value = d.isoformat() if d else None
        elif fmt == "time" or (fmt is None and name.endswith("time")):
            t = parse_time(a.text)
            value = t.strftime("%H:%M") if t else None
        elif fmt == "date-time":
            d, t = parse_date(a.text, ctx.today), parse_time(a.text)
            if d and t:
                value = dt.datetime.combine(d, t).isoformat(timespec="minutes")
        elif _is_phone(name, schema):
            for idx, n in enumerate(a.numbers):
                e164 = _to_e164(n.digits, ctx.caller_number)
                if e164 and _pattern_ok(schema, e164):
                    value = e164
                    fill.used_numbers.add(idx)
                    break
            if (
                value is None
                and ctx.caller_number
                and re.search(r"\b(my|this) (phone )?number\b|\bcalling from\b", low)
            ):
                value = ctx.caller_number
        elif (cands := _candidates(name, schema, tool, ctx)) and "string" in (types or {"string"}):
            utt = set(a.concepts)
            # A value said as such ("sales") beats one reached through a synonym.
            said = {stem(w) for w in a.words}
            literal = [c for c in cands if stem(c.lower()) in said]
            for cand in literal or cands:
                if _value_said(cand, tool, a):
                    value = cand
                    break
            if value is None and tool.kind == "transfer" and "human" in utt:
                value = next((c for c in cands if concept(c.lower()) == "human"), None)
        elif (acct := _account_like(schema, a)) is not None:
            value, words = acct
            fill.used_words |= words
            fill.used_numbers |= {k for k, n in enumerate(a.numbers) if n.start in words}
        elif _strict_string(schema):
            if True:
                for idx, n in enumerate(a.numbers):
                    if idx not in fill.used_numbers and _pattern_ok(schema, n.digits):
                        value = n.digits
                        fill.used_numbers.add(idx)
                        break
        elif name == "reason":
            if only is None:
                value = f"caller said: {a.text.strip()}"[: int(schema.get("maxLength") or 200)]
        elif ("string" in types or not types) and (name in tool.required or answer):
            text = _free_text(a, tool, fill, answer)
            if text and _pattern_ok(schema, text):
                value = text
        if value is not None:
            fill.values[name] = value
    return fill.values


def strict_fits(tool: ToolSpec, a: Analysis, ctx: Context) -> dict[str, Any]:
    """Required, strictly typed arguments of ``tool`` that ``a`` holds a fitting value for
    (digit patterns, ranged numbers, enums): evidence that the caller means this tool."""
    out: dict[str, Any] = {}
    if not a.numbers:
        return out
    props = tool.properties
    for name in tool.required:
        schema = props[name]
        types = _types(schema)
        strict = _strict_string(schema) and not _is_phone(name, schema)
        ranged = ("integer" in types or "number" in types) and (
            "minimum" in schema and "maximum" in schema
        )
        if not (strict or ranged):
            continue
        got = fill_arguments(tool, a, ctx, only=name)
        if name in got:
            out[name] = got[name]
    return out


# --- decisions ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one utterance.

    ``action``: ``call`` (say ``say`` if set, then call ``tool`` with ``arguments``),
    ``ask`` (say ``say``: a question for ``missing`` or a confirmation), ``answer``
    (say ``say``, no tool). ``intent``, ``reason`` and ``scores`` explain the choice.
    """

    action: Literal["call", "ask", "answer"]
    say: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    missing: str | None = None
    intent: str | None = None
    reason: str = ""
    scores: tuple[IntentScore, ...] = ()

    def explain(self) -> dict[str, Any]:
        """The decision as a JSON-able dict (for the structured log)."""
        return {
            "action": self.action,
            "tool": self.tool,
            "arguments": self.arguments,
            "missing": self.missing,
            "intent": self.intent,
            "reason": self.reason,
            "say": self.say,
            "scores": [s.as_dict() for s in self.scores[:4]],
        }


@dataclass(slots=True)
class Pending:
    """A tool call waiting for the caller: a missing argument or a yes/no confirmation."""

    tool: str
    arguments: dict[str, Any]
    missing: str | None
    confirm: bool = False
    asks: int = 1


def _humanize_value(value: Any) -> str:
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
        return ", ".join(_humanize_value(v) for v in value[:5])
    if isinstance(value, dict):
        return ", ".join(f"{_label(k)} {_humanize_value(v)}" for k, v in list(value.items())[:3])
    return str(value)


def _subject(tool: ToolSpec, args: Mapping[str, Any], result: Mapping[str, Any] | None) -> str:
    """ "order 1042" from the identifying argument (or the result's id)."""
    for name, value in args.items():
        if name.endswith(("_id", "_number")) and isinstance(value, str | int):
            return f"{_label(name)} {value}"
    if result:
        for key, value in result.items():
            if key.endswith("_id") and key != "account_id" and isinstance(value, str | int):
                return f"{_label(key)} {value}"
    return "that"


def _ask_text(tool: ToolSpec, name: str, ctx: Context) -> str:
    schema = tool.properties.get(name, {})
    types = _types(schema)
    label = _label(name)
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
        return f"{_label(name).capitalize()}: yes or no?"
    cands = _candidates(name, schema, tool, ctx)
    if cands:
        return (
            f"Who would you like to talk to: {_or_list(cands)}?"
            if tool.kind == "transfer"
            else (f"Which {label}: {_or_list(cands)}?")
        )
    if _is_phone(name, schema):
        return "What's the phone number?"
    verb = "order" if "order" in tool.name else "get"
    return f"What would you like to {verb}?" if label == "item" else f"What's the {label}?"


def _or_list(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _describe_args(tool: ToolSpec, args: Mapping[str, Any]) -> str:
    """ "2 coffee grinders" / "order 1042" for a confirmation question."""
    qty = next(
        (v for k, v in args.items() if k in ("quantity", "count") and isinstance(v, int)), None
    )
    item = next((v for k, v in args.items() if k in ("item", "product", "name")), None)
    if item is not None:
        return f"{item}, quantity {qty}" if qty is not None else str(item)
    parts = [f"{_label(k)} {_humanize_value(v)}" for k, v in args.items() if k != "reason"]
    return ", ".join(parts) or tool.name.replace("_", " ")


def _abilities(tools: Iterable[ToolSpec]) -> str:
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
    return f"I can {_or_list(phrases)}."


class Understanding:
    """Per-conversation decision maker over a fixed set of tools (see module doc).

    ``decide(text)`` → :class:`Decision`; ``after_tool(name, arguments, output)`` →
    the spoken answer to a ``function_call_output`` (and maybe a follow-up question).
    Remembers a pending tool call across turns and the last thing it said.
    """

    def __init__(self, tools: Sequence[ToolSpec], context: Context | None = None) -> None:
        self.tools = {t.name: t for t in tools}
        self.index = IntentIndex(tools)
        self.context = context or Context()
        self.pending: Pending | None = None
        self.last_said: str = ""
        self.misses = 0

    # --- phrases --------------------------------------------------------------------------
    def offer(self) -> str:
        return "How can I help you today?"

    def _chat_answer(self, chat: ChatIntent) -> str:
        company = f"{self.context.company}'s " if self.context.company else "the "
        text = chat.answer.format(
            offer=self.offer(),
            company=company,
            abilities=_abilities(self.tools.values()),
            last=self.last_said or "I said: how can I help you today?",
        )
        return text

    def not_understood(self) -> str:
        """First miss: ask to repeat; misses in a row: say what the agent can do."""
        self.misses += 1
        if self.misses == 1:
            return "Sorry, I didn't catch that. Could you say it again?"
        return f"Sorry, I didn't get that either. {_abilities(self.tools.values())} " + (
            "What would you like to do?"
        )

    # --- decide ---------------------------------------------------------------------------
    def decide(
        self,
        text: str,
        *,
        tool_choice: str = "auto",
        forced_tool: str | None = None,
    ) -> Decision:
        """Decide what to do with ``text`` (a transcript or typed user text)."""
        a = analyse(text)
        scores = tuple(self.index.score(a, self.context))
        decision = self._decide(a, scores, tool_choice, forced_tool)
        if decision.reason and not decision.reason.startswith(("best ", "no intents")):
            self.misses = 0
        if decision.say:
            self.last_said = decision.say
        log.info(
            "understanding: %s %s (%s)",
            decision.action,
            decision.tool or decision.intent or "-",
            decision.reason,
            extra={"understanding": {"text": text, **decision.explain()}},
        )
        return decision

    def preview(self, text: str) -> Decision:
        """What :meth:`decide` would do with ``text`` now, without changing the dialogue
        state or logging (the engine uses it to synthesise a reply speculatively)."""
        saved = (copy.deepcopy(self.pending), self.last_said, self.misses)
        try:
            a = analyse(text)
            return self._decide(a, tuple(self.index.score(a, self.context)), "auto", None)
        finally:
            self.pending, self.last_said, self.misses = saved

    def _decide(
        self,
        a: Analysis,
        scores: tuple[IntentScore, ...],
        tool_choice: str,
        forced_tool: str | None,
    ) -> Decision:
        if not a.words:
            return Decision(
                "answer",
                "Sorry, I didn't catch that. Could you say it again?",
                reason="empty transcript",
                scores=scores,
            )
        if tool_choice == "none":
            self.pending = None
            scores = tuple(s for s in scores if s.name not in self.tools)
        if forced_tool and forced_tool in self.tools:
            self.pending = None
            return self._start(
                self.tools[forced_tool], a, scores, f"tool_choice forces {forced_tool}"
            )
        if self.pending is not None:
            follow = self._follow_up(a, scores)
            if follow is not None:
                return follow
        if not scores:
            return Decision("answer", self.not_understood(), reason="no intents", scores=scores)
        best = scores[0]
        runner = scores[1].score if len(scores) > 1 else 0.0
        if tool_choice == "required":
            tool_scores = [s for s in scores if s.name in self.tools]
            if tool_scores:
                top = tool_scores[0]
                return self._start(
                    self.tools[top.name],
                    a,
                    scores,
                    f"tool_choice required; best tool {top.name} ({top.score:.2f})",
                )
        if best.score < MIN_SCORE or best.score - runner < MIN_MARGIN:
            why = (
                f"best {best.name} {best.score:.2f} below {MIN_SCORE}"
                if best.score < MIN_SCORE
                else f"{best.name} {best.score:.2f} too close to {scores[1].name} {runner:.2f}"
            )
            return Decision("answer", self.not_understood(), reason=why, scores=scores)
        matched = ", ".join(best.matched) or "-"
        why = f"{best.name} scored {best.score:.2f} (next {runner:.2f}); matched {matched}"
        if best.name in self.tools:
            return self._start(self.tools[best.name], a, scores, why)
        chat = next(c for c in CHAT if f"chat:{c.name}" == best.name)
        if chat.name == "nevermind":
            self.pending = None
        return Decision(
            "answer", self._chat_answer(chat), intent=best.name, reason=why, scores=scores
        )

    def _start(
        self, tool: ToolSpec, a: Analysis, scores: tuple[IntentScore, ...], why: str
    ) -> Decision:
        args = fill_arguments(tool, a, self.context)
        return self._next_step(tool, args, scores, why, first=True)

    def _next_step(
        self,
        tool: ToolSpec,
        args: dict[str, Any],
        scores: tuple[IntentScore, ...],
        why: str,
        first: bool = False,
    ) -> Decision:
        missing = [r for r in tool.required if r not in args]
        if missing:
            name = missing[0]
            question = _ask_text(tool, name, self.context)
            if first:
                question = f"{self._ack(tool)}{question}"
            self.pending = Pending(tool.name, dict(args), name)
            return Decision(
                "ask",
                question,
                tool.name,
                dict(args),
                name,
                tool.name,
                f"{why}; required argument {name!r} missing: asking",
                scores,
            )
        if tool.confirm_first and not (
            self.pending
            and self.pending.confirm
            and self.pending.tool == tool.name
            and self.pending.missing is None
            and self.pending.asks < 0
        ):
            self.pending = Pending(tool.name, dict(args), None, confirm=True)
            q = f"Just to confirm: {_describe_args(tool, args)}. Shall I go ahead?"
            return Decision(
                "ask",
                q,
                tool.name,
                dict(args),
                None,
                tool.name,
                f"{why}; description asks to confirm first",
                scores,
            )
        self.pending = None
        return Decision(
            "call", self._pre_call(tool, args), tool.name, dict(args), None, tool.name, why, scores
        )

    def _ack(self, tool: ToolSpec) -> str:
        if tool.kind == "lookup":
            return "Sure, I can check that. "
        if tool.kind == "transfer":
            return "Sure. "
        return "Sure. "

    def _pre_call(self, tool: ToolSpec, args: Mapping[str, Any]) -> str | None:
        """What to say in the same response before the function call."""
        if tool.kind == "hangup":
            company = f" {self.context.company}" if self.context.company else ""
            return f"Thanks for calling{company}. Goodbye!"
        if tool.kind == "transfer":
            target = next((str(v) for k, v in args.items() if k != "reason"), "someone")
            who = "a person" if concept(target.lower()) == "human" else target
            return f"Sure, I'll transfer you to {who} now."
        if tool.kind == "lookup":
            # A constant first sentence is in the TTS cache, so audio starts at once; the
            # read-back is synthesised while it plays.
            subject = _subject(tool, args, None)
            check = f"Let me check {subject}." if subject != "that" else "Let me look that up."
            return f"{HOLD_LINE} {check}"
        return "Okay, one moment."

    def _follow_up(self, a: Analysis, scores: tuple[IntentScore, ...]) -> Decision | None:
        p = self.pending
        assert p is not None
        tool = self.tools.get(p.tool)
        if tool is None:
            self.pending = None
            return None
        best = scores[0] if scores else None
        strong_other = (
            best is not None
            and best.name != tool.name
            and best.score >= SWITCH_SCORE
            and best.name not in ("chat:ack", "chat:thanks")
        )
        if best is not None and best.name == "chat:nevermind" and best.score >= MIN_SCORE:
            self.pending = None
            return None
        if p.confirm:
            yes = parse_yes_no(a.text)
            if yes is True:
                p.asks = -1  # confirmed
                decision = self._next_step(
                    tool, p.arguments, scores, f"caller confirmed {tool.name}"
                )
                return decision
            if yes is False:
                self.pending = None
                return Decision(
                    "answer",
                    "Okay, I won't do that. What else can I help with?",
                    reason=f"caller declined {tool.name}",
                    scores=scores,
                )
            if strong_other:
                self.pending = None
                return None
            p.asks += 1
            if p.asks > MAX_ASKS:
                self.pending = None
                return Decision(
                    "answer",
                    "Okay, let's leave that. " + self.offer(),
                    reason="no yes/no answer to the confirmation",
                    scores=scores,
                )
            return Decision(
                "ask",
                f"Sorry, should I go ahead with {_describe_args(tool, p.arguments)}? Yes or no?",
                tool.name,
                dict(p.arguments),
                None,
                tool.name,
                "confirmation answer was neither yes nor no",
                scores,
            )
        assert p.missing is not None
        got = fill_arguments(tool, a, self.context, only=p.missing, answer=not strong_other)
        if p.missing in got:
            args = {**p.arguments, **got}
            # The answer may carry other arguments too ("two coffee grinders").
            for k, v in fill_arguments(tool, a, self.context).items():
                args.setdefault(k, v)
            return self._next_step(
                tool, args, scores, f"filled {p.missing!r} of pending {tool.name} from the answer"
            )
        if strong_other:
            self.pending = None
            return None
        p.asks += 1
        if p.asks > MAX_ASKS:
            self.pending = None
            return Decision(
                "answer",
                "Sorry, I still didn't get that. " + self.offer(),
                reason=f"no value for {p.missing!r} after {MAX_ASKS} asks",
                scores=scores,
            )
        q = "Sorry, I didn't get that. " + _ask_text(tool, p.missing, self.context)
        return Decision(
            "ask",
            q,
            tool.name,
            dict(p.arguments),
            p.missing,
            tool.name,
            f"answer had no value for {p.missing!r}",
            scores,
        )

    # --- tool results ---------------------------------------------------------------------
    def after_tool(self, name: str, arguments: str | None, output: str) -> str:
        """The spoken answer to a ``function_call_output`` of tool ``name``.

        Errors (``{"ok": false, "error": {...}}`` or ``{"error": ...}``) → an apology
        naming the problem, and a question when the message names an argument the tool
        takes (then the engine waits for it). Else the flow's ``reply`` template, else a
        generic sentence that reads the result's fields.
        """
        tool = self.tools.get(name) or ToolSpec(name)
        try:
            args_obj = json.loads(arguments) if arguments else {}
        except ValueError:
            args_obj = {}
        args: dict[str, Any] = args_obj if isinstance(args_obj, dict) else {}
        try:
            data: Any = json.loads(output)
        except ValueError:
            data = output
        text = self._after_tool(tool, args, data)
        self.last_said = text
        log.info(
            "understanding: answer to %s",
            name,
            extra={"understanding": {"tool": name, "say": text}},
        )
        return text

    def _after_tool(self, tool: ToolSpec, args: dict[str, Any], data: Any) -> str:
        if isinstance(data, dict) and (data.get("ok") is False or data.get("error")):
            return self._apology(tool, args, data.get("error"))
        if not isinstance(data, dict):
            text = _humanize_value(data) if data not in (None, "") else ""
            return f"Here's what I found: {text}." if text else "Done."
        if tool.reply:
            try:
                values = {k: _humanize_value(v) for k, v in {**args, **data}.items()}
                return tool.reply.format_map(values)
            except (KeyError, IndexError, ValueError):
                pass
        return self._generic(tool, args, data)

    def _apology(self, tool: ToolSpec, args: dict[str, Any], error: Any) -> str:
        message = ""
        code = ""
        if isinstance(error, dict):
            message = str(error.get("message") or "")
            code = str(error.get("code") or "")
        elif error:
            message = str(error)
        problem = message.split(";")[0].strip() or code.replace("_", " ") or "it didn't work"
        problem = re.sub(r"(?i)\bthe caller's\b", "your", problem)
        problem = re.sub(r"(?i)\bcaller\b", "you", problem)
        text = f"I'm sorry, I couldn't do that: {problem}."
        # "…; ask for their account id": the tool takes that argument, so ask for it.
        low = message.lower().replace("_", " ")
        for pname in tool.properties:
            if pname in args:
                continue
            if _label(pname) in low and (
                (pname.endswith("_id") and "id" in low) or _label(pname) + " " in low
            ):
                self.pending = Pending(tool.name, dict(args), pname)
                return f"{text} {_ask_text(tool, pname, self.context)}"
        return text

    def _generic(self, tool: ToolSpec, args: dict[str, Any], data: dict[str, Any]) -> str:
        if tool.kind == "hangup":
            return ""  # the goodbye was said before the call; the line closes now
        if tool.kind == "transfer":
            return "You're being transferred now. Please hold."
        subject = _subject(tool, args, data)
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
            details.append((rank, _label(key), _humanize_value(value)))
        details.sort(key=lambda d: d[0])
        parts: list[str] = []
        subj = subject[0].upper() + subject[1:]
        if flags:
            done = flags[0]
            parts.append(f"{subj} has been {done}." if subject != "that" else f"Done: {done}.")
        elif "status" in data and isinstance(data["status"], str):
            parts.append(f"{subj} is {data['status']}.")
        elif "name" in data and tool.kind == "lookup":
            parts.append(f"I found the account for {_humanize_value(data['name'])}.")
            details = [d for d in details if d[1] != "name"]
        else:
            parts.append(
                f"Here's what I found for {subject}."
                if subject != "that"
                else "Here's what I found."
            )
        parts += [f"{label[0].upper()}{label[1:]}: {value}." for _, label, value in details[:2]]
        return " ".join(parts)
