"""The offline analysis: an extractive summary and schema-driven field filling.

Deterministic: the same call gives the same analysis. ``summary`` is built from what was
said (the caller's request: their first substantive line), what the agent did (tool
calls and the agent line that answered them) and how the call ended. Each field of the
flow's schema is filled, in order of preference, from

1. a tool call's argument of the same name (``order_id`` of ``get_order_status``), then a
   tool result's value of that name (``delivery_date``);
2. by its type: ``boolean`` fields by what their name says (resolved/success/answered:
   a tool succeeded and the call was neither aborted nor handed off; transfer/escalate:
   a transfer; opt-out/stop: an opt-out), ``enum`` strings by the value whose words best
   match the tool names and the caller's words (``other``/``unknown`` when none do),
   ``format: date`` from a tool result's date named like the field (``delivery``) or an
   ISO date the caller said, ``pattern`` strings from the first word that matches,
   numbers from the caller's words.

A field with nothing to fill it is left out (a required one then fails validation, and
the failure is what is stored).
"""

from __future__ import annotations

import re
from typing import Any

from app.analysis.model import AnalysisInput, ToolUse
from flows.analysis import AnalysisSettings

_WORD = re.compile(r"[a-z0-9]+")
_ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FALLBACK_ENUMS = ("other", "unknown", "none")
_SUCCESS_WORDS = ("resolv", "success", "answer", "complet", "satisf", "done", "reached")
_TRANSFER_WORDS = ("transfer", "escalat", "handoff", "human")
_OPT_OUT_WORDS = ("opt", "stop", "dnc", "unsubscrib")
#: Words too common to tell enum values apart.
_STOP = frozenset(
    "a an and the to of for is it i my me you your on in at be".split()  # noqa: SIM905
)
_SYNONYMS = {"new": ("create", "place", "buy", "want"), "status": ("where", "shipped", "track")}


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quoted(text: str) -> str:
    """``“text”.`` (no second stop after a sentence that has one)."""
    clipped = _clip(text)
    return f"“{clipped}”" + ("" if clipped.endswith((".", "?", "!", "…")) else ".")


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("status", "outcome", "item", "name"):
            if key in value:
                return str(value[key])
        return ""
    return str(value)


class LocalAnalyzer:
    """Computes an analysis without a model (see the module docstring)."""

    engine = "local"
    model: str | None = None

    async def analyze(self, call: AnalysisInput, spec: AnalysisSettings) -> dict[str, Any]:
        """``{"summary": str | None, "fields": {...}}`` (not yet validated)."""
        return {
            "summary": self.summary(call) if spec.summary else None,
            "fields": self.fields(call, spec),
        }

    # --- summary ----------------------------------------------------------------------

    def summary(self, call: AnalysisInput) -> str:
        parts: list[str] = []
        request = next(
            (t.text for t in call.turns if t.role == "user" and len(_words(t.text)) >= 3),
            next((t.text for t in call.turns if t.role == "user"), ""),
        )
        if request:
            parts.append(f"The caller said: {_quoted(request)}")
        else:
            parts.append("The caller said nothing the agent understood.")
        for tool in call.tools:
            if tool.name == "end_call":
                continue
            args = ", ".join(f"{k} {v}" for k, v in tool.arguments.items() if v not in ("", None))
            outcome = "failed" if not tool.ok else _scalar(tool.result) or "done"
            parts.append(f"The agent ran {tool.name}({args}): {outcome}.")
            reply = self._reply_after(call, tool)
            if reply:
                parts.append(f"It told the caller: {_quoted(reply)}")
        if not call.tools:
            answer = next((t.text for t in call.turns if t.role == "assistant"), "")
            if answer:
                parts.append(f"The agent said: {_quoted(answer)}")
        if call.end_reason:
            parts.append(f"The call ended: {call.end_reason}.")
        return " ".join(parts)

    @staticmethod
    def _reply_after(call: AnalysisInput, tool: ToolUse) -> str:
        """The first agent line after the tool finished (``at_ms``: ms into the call)."""
        later = [t for t in call.turns if t.role == "assistant" and t.offset_ms >= tool.at_ms]
        return later[0].text if later else ""

    # --- fields -----------------------------------------------------------------------

    def fields(self, call: AnalysisInput, spec: AnalysisSettings) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, schema in spec.properties.items():
            if not isinstance(schema, dict):
                continue
            value = self._from_tools(call, name, schema)
            if value is None:
                value = self._by_type(call, name, schema)
            if value is not None:
                out[name] = value
        return out

    def _from_tools(self, call: AnalysisInput, name: str, schema: dict[str, Any]) -> Any:
        for tool in reversed(call.tools):
            if name in tool.arguments and tool.arguments[name] not in ("", None):
                return self._coerce(tool.arguments[name], schema)
        for tool in reversed(call.tools):
            if isinstance(tool.result, dict) and tool.result.get(name) not in ("", None):
                return self._coerce(tool.result[name], schema)
        return None

    @staticmethod
    def _coerce(value: Any, schema: dict[str, Any]) -> Any:
        kind = schema.get("type")
        enum = schema.get("enum")
        if enum and value not in enum:
            return None
        try:
            if kind == "string":
                return str(value)
            if kind == "integer":
                return int(value)
            if kind == "number":
                return float(value)
            if kind == "boolean":
                return bool(value)
        except (TypeError, ValueError):
            return None
        return value

    def _by_type(self, call: AnalysisInput, name: str, schema: dict[str, Any]) -> Any:
        kind = schema.get("type")
        caller = " ".join(t.text for t in call.turns if t.role == "user")
        said = " ".join(t.text for t in call.turns)
        if kind == "boolean":
            return self._boolean(call, name)
        if kind == "string" and schema.get("enum"):
            return self._enum(call, [str(v) for v in schema["enum"]], caller)
        if kind == "string" and schema.get("format") == "date":
            return self._date(call, name, caller)
        if kind == "string" and schema.get("pattern"):
            pattern = re.compile(str(schema["pattern"]))
            return next((w for w in _words(said) if pattern.search(w)), None)
        if kind == "string" and "summary" in name:
            return self.summary(call)
        if kind in ("integer", "number"):
            found = _NUMBER.search(caller)
            if found is None:
                return None
            return int(float(found.group())) if kind == "integer" else float(found.group())
        return None

    @staticmethod
    def _date(call: AnalysisInput, name: str, caller: str) -> str | None:
        """A tool result's date whose key shares a word with ``name`` (``delivery`` of
        ``delivery_date``), else an ISO date the caller said; never some other date."""
        words = set(_words(name.replace("_", " "))) - {"date", "day", "on"}
        for tool in reversed(call.tools):
            if not isinstance(tool.result, dict):
                continue
            for key, value in tool.result.items():
                key_words = set(_words(str(key).replace("_", " ")))
                if words & key_words and _ISO_DATE.fullmatch(str(value)):
                    return str(value)
        found = _ISO_DATE.search(caller)
        return found.group(1) if found else None

    @staticmethod
    def _boolean(call: AnalysisInput, name: str) -> bool:
        low = name.lower()
        transferred = any(t.name == "transfer_call" and t.ok for t in call.tools) or (
            call.end_reason.startswith("transfer")
        )
        if any(w in low for w in _TRANSFER_WORDS):
            return transferred
        if any(w in low for w in _OPT_OUT_WORDS):
            return any(t.name == "opt_out" and t.ok for t in call.tools)
        if any(w in low for w in _SUCCESS_WORDS):
            useful = [t for t in call.tools if t.name not in ("end_call", "transfer_call")]
            aborted = call.end_reason.startswith(("internal error", "aborted", "instance lost"))
            if "reach" in low:
                return any(t.role == "user" for t in call.turns) and not aborted
            return bool(useful) and all(t.ok for t in useful) and not transferred and not aborted
        return False

    @staticmethod
    def _enum(call: AnalysisInput, values: list[str], caller: str) -> str:
        heard: set[str] = {_stem(w) for w in _words(caller)} - _STOP
        tool_words: set[str] = set()
        for tool in call.tools:
            tool_words |= {_stem(w) for w in _words(tool.name.replace("_", " "))}
            for value in tool.arguments.values():
                tool_words |= {_stem(w) for w in _words(str(value))}
        best, best_score = "", 0.0
        for value in values:
            words = {_stem(w) for w in _words(value.replace("_", " "))} - _STOP
            if not words or value in _FALLBACK_ENUMS:
                continue
            expanded = set(words)
            for w in words:
                expanded |= set(_SYNONYMS.get(w, ()))
            score = 2.0 * len(words & tool_words) + len(expanded & heard)
            if value in {str(a) for t in call.tools for a in t.arguments.values()}:
                score += 10  # a tool argument named it outright
            score /= len(words)
            if score > best_score:
                best, best_score = value, score
        if best:
            return best
        return next((v for v in values if v in _FALLBACK_ENUMS), values[0])
