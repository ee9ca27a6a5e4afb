"""Text → tokens: the normalisation every utterance, example and description goes through.

Lower-case; contractions expanded ("what's" → "what is"); multi-word phrases mapped to one
concept (:data:`PHRASES`: "talk to" → ``talkto``, "that's all" → ``finish``); words stemmed
(:func:`stem`) and mapped to a concept (:data:`LEXICON`: representative/agent/person →
``human``); stop words dropped; every number (spoken or written, see
:mod:`switchboard_engine.numbers`) becomes the token ``#num`` (:data:`NUM`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from switchboard_engine.numbers import NumberSpan, find_numbers
from switchboard_engine.numbers import tokens as number_tokens

#: The concept token of a number (spoken or written).
NUM = "#num"

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
            "say that again": "repeat", "come again": "repeat",
            "did not hear": "repeat",
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
            # Account questions (issue 14): the caller's details, not an order.
            "email address": "account", "e mail": "account", "phone number": "account",
            "shipping address": "account", "delivery address": "account",
            "home address": "account", "up to date": "account", "contact details": "account",
            "in your system": "account", "registered to": "account",
            "where do you send": "account",
            # Checking on an order is a status question; never got it is a late one.
            "checking on": "status", "check on": "status", "happening with": "status",
            "never got": "late", "did not get": "late", "have not got": "late",
            "not received": "late", "never received": "late", "how much": "price",
            "do you close": "hours", "will you open": "hours", "do you open": "hours",
            # Asking for a person.
            "customer service": "human", "customer support": "human",
            "customer care": "human", "live agent": "human", "in support": "human",
            "someone in": "human",
            # Late or missing orders are status questions.
            "not arrived": "late", "not come": "late", "never came": "late",
            "not shown up": "late", "not here": "late", "shown up": "ship",
            # Off-topic (out of scope for the line).
            "money back": "refund", "return policy": "refund", "opening hours": "hours",
            "are you open": "hours", "when are you open": "hours", "gift card": "offtopic",
            "the weather": "weather", "is it raining": "weather",
            "have a good one": "bye",
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
    "address": "account", "email": "account", "registered": "account",
    "manager": "human", "supervisor": "human", "support": "human", "boss": "human",
    "late": "late", "overdue": "late", "missing": "late", "came": "late",
    "done": "finish",
    "weather": "weather", "rain": "weather", "sunny": "weather",
    "hour": "hours", "hours": "hours", "refund": "refund",
    "paypal": "pay", "pay": "pay", "payment": "pay", "cost": "price", "price": "price",
    "hir": "offtopic", "job": "offtopic", "joke": "offtopic", "capital": "offtopic",
    "store": "offtopic", "shop": "offtopic", "game": "offtopic", "meaning": "offtopic",
    "canada": "abroad", "mexico": "abroad", "europe": "abroad", "uk": "abroad",
    "england": "abroad", "australia": "abroad", "germany": "abroad", "france": "abroad",
    "boston": "abroad", "abroad": "abroad", "overseas": "abroad",
    "internationally": "abroad", "international": "abroad",
}  # fmt: skip


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = word_set(
    """a an the and or but if of to in at by for with from as is are was were be been am
    i me my mine you your yours we our us they them their it its this that these those
    there here do does did can could would will shall should may might must have has
    had having please just so very really also too now then well um uh er oh like want
    need let get got make go going some any all what which how again same own into onto
    about over under up down out off on not no yes yeah im would id ill ive know think
    tell use used using return returns returned true false null none caller call calls
    calling e g eg when said says something anything stuff thing things never ever"""
)
#: Discourse markers: they open or pad a sentence more than they carry its meaning.
DISCOURSE = word_set("ok great right cool perfect awesome fine good")
DISCOURSE_WEIGHT = 0.3
#: Words that name what a caller wants done, not the thing itself (free-text slots skip them).
REQUEST_WORDS = word_set(
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


#: Words after which a last "by" is a goodbye ("okay, by", "forget it by"), not a
#: preposition ("can I come by", "who is it shipped by").
_BEFORE_BYE = frozenset(
    {"ok", "okay", "thanks", "thank", "you", "it", "alright", "bye", "then", "nevermind"}
)
#: Words after which "order" is a verb ("I'd like to order", "we'll order").
_VERB_BEFORE = frozenset({"to", "i", "we", "will", "would", "ll", "d", "and", "also"})


def _quantity_of_a_thing(words: list[str], numbers: list[NumberSpan], at: int) -> bool:
    """True if a small number (one or two digits) starts at word ``at`` and a word that
    names something follows it ("four filters"; not "1042", "3 of them")."""
    span = next((n for n in numbers if n.start == at), None)
    return (
        span is not None
        and len(span.digits) <= 2
        and span.end < len(words)
        and words[span.end] not in STOP_WORDS
    )


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
    if len(words) > 1 and words[-1] == "by" and words[-2] in _BEFORE_BYE:
        words[-1] = "bye"  # Whisper writes "Okay, by." for "Okay, bye."
    numbers = find_numbers(words)
    in_number = {i for n in numbers for i in range(n.start, n.end)}
    plain = [("#n" if i in in_number else w) for i, w in enumerate(words)]
    concepts: list[str] = []
    seen_num = False
    for i, w in enumerate(plain):
        if (
            w in ("order", "orders")
            and i > 0
            and plain[i - 1] in _VERB_BEFORE
            and (i + 1 >= len(plain) or plain[i + 1] != "#n")  # "will order 1630 come"
        ):
            w = "buy"  # "to order", "I'll order": the verb, not an order that exists
        if w == "get" and _quantity_of_a_thing(words, numbers, i + 1):
            w = "buy"  # "can I get four filters", not "when will I get 1042"
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
