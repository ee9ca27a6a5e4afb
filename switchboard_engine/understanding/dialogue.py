"""The dialogue: one utterance at a time → a :class:`Decision`, across turns.

The best intent wins if its score ≥ :data:`MIN_SCORE` and it leads the runner-up by
:data:`MIN_MARGIN`; otherwise the engine says it did not understand. A missing *required*
argument is asked for (never guessed) and filled from the next utterance; a tool whose
description asks to confirm first is confirmed with a yes/no question.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from switchboard_engine.numbers import NumberSpan, parse_yes_no
from switchboard_engine.understanding.hearing import (
    CONFIRM_BELOW,
    MAX_REJECTIONS,
    Heard,
    numbers_sure,
    other_values,
    read_back_text,
)
from switchboard_engine.understanding.intents import CHAT, ChatIntent, IntentIndex, IntentScore
from switchboard_engine.understanding.normalize import Analysis, analyse, concept
from switchboard_engine.understanding.replies import (
    HOLD_LINE,
    abilities,
    ask_text,
    describe_args,
    humanize_value,
    read_result,
    scope,
    subject_of,
)
from switchboard_engine.understanding.slots import Context, fill_arguments, label_of
from switchboard_engine.understanding.toolspec import ToolSpec

log = logging.getLogger(__name__)

#: An intent must score at least this (0..1.3) to be chosen.
MIN_SCORE = 0.3
#: ... and lead the runner-up by this much.
MIN_MARGIN = 0.05
#: While an argument is pending, another intent must score this much to take over.
SWITCH_SCORE = 0.6
#: Times the engine asks for the same missing argument before giving up.
MAX_ASKS = 2
#: Chat intents that never take over a pending question ("okay", "thanks").
_SOFT = frozenset({"chat:ack", "chat:thanks", "chat:repeat", "chat:hold"})


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
    #: The argument being read back for a yes/no before the call (low confidence).
    confirming: str | None = None
    #: The utterance was not understood ("Sorry, I didn't catch that").
    missed: bool = False

    def explain(self) -> dict[str, Any]:
        """The decision as a JSON-able dict (for the structured log)."""
        return {
            "action": self.action,
            "tool": self.tool,
            "arguments": self.arguments,
            "missing": self.missing,
            "confirming": self.confirming,
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
    #: Set while a doubtful value of this argument is read back for a yes/no.
    confirming: str | None = None
    #: Arguments the caller confirmed (never read back again).
    confirmed: frozenset[str] = frozenset()
    #: Other values the audio was heard as for ``confirming``: read back in turn if the
    #: caller says no (at most :data:`MAX_READ_BACKS` read-backs of one value in all).
    fallbacks: tuple[Any, ...] = ()
    #: (argument, value) pairs the caller said no to: never read back again.
    rejected: frozenset[tuple[str, Any]] = frozenset()


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
        self._missed = False
        #: The utterance being decided and its transcription confidence (None: typed).
        self._analysis: Analysis | None = None
        self._confidence: float | None = None
        #: Heard through speech: numbers not sure enough are read back (None: typed).
        self._heard: Heard | None = None

    def _hear(self, a: Analysis, confidence: float | None, heard: Heard | None) -> None:
        self._analysis = a
        self._confidence = heard.confidence if heard is not None else confidence
        self._heard = heard

    # --- phrases --------------------------------------------------------------------------
    def offer(self) -> str:
        return "How can I help you today?"

    def _chat_answer(self, chat: ChatIntent) -> str:
        company = f"{self.context.company}'s " if self.context.company else "the "
        text = chat.answer.format(
            offer=self.offer(),
            company=company,
            abilities=abilities(self.tools.values()),
            scope=scope(self.tools.values()),
            last=self.last_said or "I said: how can I help you today?",
        )
        return text

    def not_understood(self) -> str:
        """First miss: ask to repeat; misses in a row: escalate (offer a person, or say
        in one sentence what the line does), never the same line twice."""
        self.misses += 1
        self._missed = True
        if self.misses == 1:
            return "Sorry, I didn't catch that. Could you say it again?"
        return self.escalate("Sorry, I'm still not getting it.")

    def escalate(self, opener: str) -> str:
        """Offer a person (a pending yes/no on the transfer tool) if the session has one
        whose arguments a person request fills; else one sentence of what the line does."""
        for tool in self.tools.values():
            if tool.kind != "transfer":
                continue
            args = fill_arguments(tool, analyse("a person"), self.context)
            if "reason" in tool.properties:
                args["reason"] = "the agent could not understand the caller"
            if all(r in args for r in tool.required):
                self.pending = Pending(tool.name, args, None, confirm=True)
                return f"{opener} Would you like me to put you through to a person?"
        return f"{opener} {scope(self.tools.values())}"

    # --- decide ---------------------------------------------------------------------------
    def decide(
        self,
        text: str,
        *,
        tool_choice: str = "auto",
        forced_tool: str | None = None,
        confidence: float | None = None,
        heard: Heard | None = None,
    ) -> Decision:
        """Decide what to do with ``text`` (a transcript or typed user text).

        ``confidence``: how sure the transcriber was (0..1; None for typed text); below
        :data:`CONFIRM_BELOW` numbers and names are read back before any tool acts.
        ``heard``: the transcription's details (it sets ``confidence``); a number in it
        that is not sure (:data:`NUMBER_SURE`) is read back before any tool acts on it.
        """
        a = analyse(text)
        scores = tuple(self.index.score(a, self.context))
        self._hear(a, confidence, heard)
        self._missed = False
        decision = self._decide(a, scores, tool_choice, forced_tool)
        if not self._missed:
            self.misses = 0
        if decision.say:
            self.last_said = decision.say
        log.info(
            "understanding: %s %s (%s)",
            decision.action,
            decision.tool or decision.intent or "-",
            decision.reason,
            extra={"understanding": {"text": text, "confidence": confidence, **decision.explain()}},
        )
        return decision

    def preview(
        self,
        text: str,
        confidence: float | None = None,
        heard: Heard | None = None,
    ) -> Decision:
        """What :meth:`decide` would do with ``text`` now, without changing the dialogue
        state or logging (the engine uses it to synthesise a reply speculatively)."""
        saved = (copy.deepcopy(self.pending), self.last_said, self.misses, self._missed)
        try:
            a = analyse(text)
            self._hear(a, confidence, heard)
            return self._decide(a, tuple(self.index.score(a, self.context)), "auto", None)
        finally:
            self.pending, self.last_said, self.misses, self._missed = saved

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
                missed=True,
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
            return Decision(
                "answer", self.not_understood(), reason="no intents", scores=scores, missed=True
            )
        best = scores[0]
        runner = scores[1].score if len(scores) > 1 else 0.0
        if (
            len(scores) > 1
            and best.name in ("chat:nevermind", "chat:thanks", "chat:ack")
            and scores[1].name in self.tools
            and self.tools[scores[1].name].kind == "hangup"
            and best.score - runner < MIN_MARGIN
        ):
            # "Forget it, bye." / "Thanks, bye.": the goodbye is what the caller does.
            best, runner = scores[1], best.score
            scores = (best, *[s for s in scores if s.name != best.name])
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
        goodbye = (
            len(scores) > 1
            and best.name in self.tools
            and self.tools[best.name].kind == "hangup"
            and scores[1].name in ("chat:nevermind", "chat:thanks", "chat:ack")
        )
        if best.score < MIN_SCORE or (best.score - runner < MIN_MARGIN and not goodbye):
            why = (
                f"best {best.name} {best.score:.2f} below {MIN_SCORE}"
                if best.score < MIN_SCORE
                else f"{best.name} {best.score:.2f} too close to {scores[1].name} {runner:.2f}"
            )
            return Decision("answer", self.not_understood(), reason=why, scores=scores, missed=True)
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
        confirmed = self.pending.confirmed if self.pending else frozenset()
        rejected = self.pending.rejected if self.pending else frozenset()
        doubt = None if missing else self._doubtful(tool, args, confirmed)
        fallbacks: tuple[Any, ...] = ()
        if doubt is not None:
            fallbacks = self._fallbacks(tool, doubt, args[doubt], rejected)
            if (doubt, args[doubt]) in rejected:  # heard again as what the caller said no to
                args = {k: v for k, v in args.items() if k != doubt}
                if fallbacks:
                    args[doubt], fallbacks = fallbacks[0], fallbacks[1:]
                else:
                    missing, doubt = [doubt], None
        elif missing and len(missing) == 1:
            # Heard through speech, the one value missing may be in another reading of
            # the audio ("94.60" written, "nine four sixty" spelled): read that back.
            found = self._fallbacks(tool, missing[0], None, rejected)
            if found:
                doubt, fallbacks, missing = missing[0], found[1:], []
                args = {**args, doubt: found[0]}
                why = f"{why}; {doubt!r} found in another reading of the audio"
        if doubt is not None:
            return self._ask_read_back(
                tool,
                args,
                doubt,
                fallbacks,
                confirmed,
                rejected,
                f"I heard {read_back_text(tool, doubt, args[doubt])}. Is that right?",
                f"{why}; {doubt!r}={args[doubt]!r} is doubtful: reading it back",
                scores,
            )
        if missing:
            name = missing[0]
            question = ask_text(tool, name, self.context)
            if first:
                question = f"{self._ack(tool)}{question}"
            self.pending = Pending(
                tool.name, dict(args), name, confirmed=confirmed, rejected=rejected
            )
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
            self.pending = Pending(
                tool.name, dict(args), None, confirm=True, confirmed=confirmed, rejected=rejected
            )
            q = f"Just to confirm: {describe_args(tool, args)}. Shall I go ahead?"
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

    def _ask_read_back(
        self,
        tool: ToolSpec,
        args: dict[str, Any],
        name: str,
        fallbacks: tuple[Any, ...],
        confirmed: frozenset[str],
        rejected: frozenset[tuple[str, Any]],
        say: str,
        why: str,
        scores: tuple[IntentScore, ...],
        asks: int = 1,
    ) -> Decision:
        """Read ``args[name]`` back for a yes/no (pending, with ``fallbacks`` to try next)."""
        self.pending = Pending(
            tool.name,
            dict(args),
            None,
            confirm=True,
            asks=asks,
            confirming=name,
            confirmed=confirmed,
            fallbacks=fallbacks,
            rejected=rejected,
        )
        return Decision(
            "ask", say, tool.name, dict(args), None, tool.name, why, scores, confirming=name
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
            subject = subject_of(tool, args, None)
            check = f"Let me check {subject}." if subject != "that" else "Let me look that up."
            return f"{HOLD_LINE} {check}"
        return "Okay, one moment."

    def _doubtful(
        self, tool: ToolSpec, args: Mapping[str, Any], confirmed: frozenset[str]
    ) -> str | None:
        """The first argument of ``args`` taken from this utterance that must be read
        back: from a number run that mixes single digits and groups ("1, 2, 3, 10, 6"),
        a number with a token heard below :data:`NUMBER_SURE`, or anything heard with
        transcription confidence below :data:`CONFIRM_BELOW`."""
        a = self._analysis
        if a is None or tool.kind in ("hangup", "transfer"):
            return None
        low = self._confidence is not None and self._confidence < CONFIRM_BELOW
        for name, value in args.items():
            if name in confirmed or name == "reason" or not isinstance(value, str | int):
                continue
            text = str(value)
            spans = [n for n in a.numbers if n.digits == text or text.endswith(n.digits)]
            if any(n.ambiguous for n in spans):
                return name
            if self._heard is not None and spans and not self._sure(a, spans):
                return name
            if low and (spans or (isinstance(value, str) and value.lower() in a.text.lower())):
                return name
        return None

    def _fallbacks(
        self,
        tool: ToolSpec,
        name: str,
        value: Any,
        rejected: frozenset[tuple[str, Any]] = frozenset(),
    ) -> tuple[Any, ...]:
        """:func:`other_values` of this utterance (none for typed text)."""
        if self._heard is None:
            return ()
        return other_values(self._heard, tool, self.context, name, value, rejected)

    def _sure(self, a: Analysis, spans: Sequence[NumberSpan]) -> bool:
        h = self._heard
        assert h is not None
        return numbers_sure(h, spans)

    def _follow_up(self, a: Analysis, scores: tuple[IntentScore, ...]) -> Decision | None:
        p = self.pending
        assert p is not None
        tool = self.tools.get(p.tool)
        if tool is None:
            self.pending = None
            return None
        best = scores[0] if scores else None
        runner = scores[1].score if len(scores) > 1 else 0.0
        strong_other = (
            best is not None
            and best.name != tool.name
            and best.score >= SWITCH_SCORE
            and best.name not in _SOFT
        )
        # A clear new request (another tool, or a question off the line's topics) takes
        # over a pending question when the answer holds no value for it.
        clear_other = strong_other or (
            best is not None
            and best.name != tool.name
            and best.name not in _SOFT
            and best.score >= MIN_SCORE
            and best.score - runner >= MIN_MARGIN
        )
        if best is not None and best.name == "chat:nevermind" and best.score >= MIN_SCORE:
            self.pending = None
            return None
        if best is not None and best.name == "chat:repeat" and best.score >= SWITCH_SCORE:
            # Say the question again; it stays pending.
            return Decision(
                "ask",
                self.last_said or self.offer(),
                tool.name,
                dict(p.arguments),
                p.missing,
                tool.name,
                "caller asked to repeat the pending question",
                scores,
                confirming=p.confirming,
            )
        if p.confirm:
            yes = parse_yes_no(a.text)
            if yes is True:
                if p.confirming is not None:
                    p.confirmed = p.confirmed | {p.confirming}
                    p.confirming = None
                    return self._next_step(
                        tool, p.arguments, scores, f"caller confirmed the read-back of {tool.name}"
                    )
                p.asks = -1  # confirmed
                decision = self._next_step(
                    tool, p.arguments, scores, f"caller confirmed {tool.name}"
                )
                return decision
            if yes is False and p.confirming is not None and not clear_other:
                # The read-back was wrong: ask for that value again, never use it.
                name = p.confirming
                rejected = p.rejected | {(name, p.arguments.get(name))}
                args = {k: v for k, v in p.arguments.items() if k != name}
                if sum(1 for n, _ in rejected if n == name) >= MAX_REJECTIONS:
                    self.pending = None
                    return Decision(
                        "answer",
                        self.escalate("Sorry, I'm having trouble hearing that."),
                        reason=f"caller rejected {MAX_REJECTIONS} values of {name!r}: escalating",
                        scores=scores,
                    )
                got = fill_arguments(tool, a, self.context, only=name)
                if name in got:
                    args[name] = got[name]
                    self.pending = Pending(
                        tool.name, args, None, confirmed=p.confirmed, rejected=rejected
                    )
                    return self._next_step(tool, args, scores, f"caller corrected {name!r}")
                fallbacks = tuple(v for v in p.fallbacks if (name, v) not in rejected)
                if fallbacks:
                    # The audio was also heard as another value: read that one back.
                    args[name] = fallbacks[0]
                    return self._ask_read_back(
                        tool,
                        args,
                        name,
                        fallbacks[1:],
                        p.confirmed,
                        rejected,
                        f"Sorry. Was it {read_back_text(tool, name, args[name])}?",
                        f"caller rejected the read-back of {name!r}: reading back "
                        f"{args[name]!r}, another reading of the audio",
                        scores,
                    )
                self.pending = Pending(
                    tool.name, args, name, confirmed=p.confirmed, rejected=rejected
                )
                return Decision(
                    "ask",
                    "Sorry about that. " + ask_text(tool, name, self.context),
                    tool.name,
                    args,
                    name,
                    tool.name,
                    f"caller rejected the read-back of {name!r}: asking again",
                    scores,
                )
            if yes is False:
                self.pending = None
                return Decision(
                    "answer",
                    "Okay, I won't do that. What else can I help with?",
                    reason=f"caller declined {tool.name}",
                    scores=scores,
                )
            if clear_other:
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
            question = (
                f"Sorry, is {read_back_text(tool, p.confirming, p.arguments[p.confirming])} right? "
                "Yes or no?"
                if p.confirming is not None
                else f"Sorry, should I go ahead with {describe_args(tool, p.arguments)}? Yes or no?"
            )
            return Decision(
                "ask",
                question,
                tool.name,
                dict(p.arguments),
                None,
                tool.name,
                "confirmation answer was neither yes nor no",
                scores,
                confirming=p.confirming,
            )
        assert p.missing is not None
        got = fill_arguments(tool, a, self.context, only=p.missing, answer=not clear_other)
        if p.missing in got:
            args = {**p.arguments, **got}
            # The answer may carry other arguments too ("two coffee grinders").
            for k, v in fill_arguments(tool, a, self.context).items():
                args.setdefault(k, v)
            return self._next_step(
                tool, args, scores, f"filled {p.missing!r} of pending {tool.name} from the answer"
            )
        if clear_other:
            self.pending = None
            return None
        found = self._fallbacks(tool, p.missing, None, p.rejected)
        if found:
            # Not in the transcript, but in another reading of the audio: read it back.
            args = {**p.arguments, p.missing: found[0]}
            return self._ask_read_back(
                tool,
                args,
                p.missing,
                found[1:],
                p.confirmed,
                p.rejected,
                f"I heard {read_back_text(tool, p.missing, found[0])}. Is that right?",
                f"answer for {p.missing!r} of {tool.name} found in another reading of the audio",
                scores,
                asks=p.asks + 1,
            )
        p.asks += 1
        if p.asks > MAX_ASKS:
            self.pending = None
            return Decision(
                "answer",
                self.escalate("Sorry, I still didn't get that."),
                reason=f"no value for {p.missing!r} after {MAX_ASKS} asks: escalating",
                scores=scores,
            )
        q = "Sorry, I didn't get that. " + ask_text(tool, p.missing, self.context)
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
            text = humanize_value(data) if data not in (None, "") else ""
            return f"Here's what I found: {text}." if text else "Done."
        if tool.reply:
            try:
                values = {k: humanize_value(v) for k, v in {**args, **data}.items()}
                return tool.reply.format_map(values)
            except (KeyError, IndexError, ValueError):
                pass
        return read_result(tool, args, data)

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
            if label_of(pname) in low and (
                (pname.endswith("_id") and "id" in low) or label_of(pname) + " " in low
            ):
                self.pending = Pending(tool.name, dict(args), pname)
                return f"{text} {ask_text(tool, pname, self.context)}"
        return text
