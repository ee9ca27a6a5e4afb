"""Flow hints for the engine's understanding: which flow a session belongs to.

A Realtime session only carries ``instructions`` and ``tools``; what a flow can declare
to help a local engine (``tool_hints``: example phrases, synonyms, reply templates; its
``transfer_targets`` and ``greeting``; ``flows.Flow``) lives in ``flows/*.yaml``. The
engine reads those files once per process and matches each session to a flow:

1. ``instructions``: the session's instructions equal a flow's (whitespace-insensitive),
   as the bridge sends them; else
2. ``tools``: the flow whose tool names overlap the session's the most (Jaccard ≥ 0.5,
   ties broken by flow name).

No match → no hints: understanding then uses only the tools' names, descriptions and
schemas. The match and its reason are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import FlowFileError
from flows import FLOWS_DIR, Flow, FlowCatalog
from switchboard_engine.understanding import ToolSpec

log = logging.getLogger(__name__)

#: Smallest tool-name overlap (Jaccard) for a tools-only match.
MIN_TOOL_OVERLAP = 0.5


@dataclass(frozen=True, slots=True)
class FlowMatch:
    """The flow a session matched and why (``instructions`` or ``tools``)."""

    flow: Flow
    reason: str


def _norm(text: str) -> str:
    return " ".join(text.split())


@dataclass(slots=True)
class FlowHints:
    """The flows the engine knows (possibly none) and the session → flow matching."""

    flows: Sequence[Flow] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path | None = FLOWS_DIR) -> FlowHints:
        """Flows from ``directory`` (default: the project's ``flows/``); none if it is
        missing or a file is invalid (logged: hints are optional)."""
        if directory is None or not directory.is_dir():
            return cls([])
        try:
            catalog = FlowCatalog.load(directory)
        except (FlowFileError, ValueError) as exc:
            log.warning("flow hints unavailable: %s", exc)
            return cls([])
        return cls(sorted(catalog.flows.values(), key=lambda f: f.name))

    def match(self, instructions: str, tool_names: Iterable[str]) -> FlowMatch | None:
        """The flow of a session with these instructions and tools (see module doc)."""
        wanted = _norm(instructions)
        for flow in self.flows:
            if wanted and _norm(flow.instructions) == wanted:
                return FlowMatch(flow, "instructions")
        names = set(tool_names)
        best: tuple[float, str] | None = None
        chosen: Flow | None = None
        for flow in self.flows:
            have = set(flow.tools)
            if not have or not names:
                continue
            overlap = len(have & names) / len(have | names)
            key = (overlap, flow.name)
            if overlap >= MIN_TOOL_OVERLAP and (best is None or key[0] > best[0]):
                best, chosen = key, flow
        if chosen is not None and best is not None:
            return FlowMatch(chosen, f"tools (overlap {best[0]:.2f})")
        return None


def tool_specs(
    definitions: Sequence[Mapping[str, Any]], flow: Flow | None = None
) -> list[ToolSpec]:
    """:class:`ToolSpec` for each function tool, with the flow's ``tool_hints``."""
    specs: list[ToolSpec] = []
    for d in definitions:
        if d.get("type", "function") != "function" or not isinstance(d.get("name"), str):
            continue
        hints = flow.tool_hints.get(str(d["name"])) if flow is not None else None
        if hints is None:
            specs.append(ToolSpec.from_definition(d))
        else:
            specs.append(ToolSpec.from_definition(d, hints.examples, hints.synonyms, hints.reply))
    return specs


#: Longest recognition prompt (characters): Whisper reads at most 224 prompt tokens, and a
#: long prompt slows every decode.
MAX_PROMPT_CHARS = 400


def _sentence(text: str) -> str:
    """ "where is my order" → "Where is my order?" (Whisper copies the prompt's style)."""
    t = text.strip().rstrip(".?!")
    if not t:
        return ""
    question = t.split()[0].lower() in {"where", "what", "what's", "has", "can", "is", "when"}
    return t[0].upper() + t[1:] + ("?" if question else ".")


def recognition_prompt(
    flow: Flow | None, session_prompt: str | None = None, tool_names: Iterable[str] = ()
) -> str | None:
    """Whisper's ``initial_prompt`` for a session: the session's own transcription prompt
    (``audio.input.transcription.prompt`` in GA) first, then the flow's vocabulary (its
    tools' example phrases, transfer targets), so words the line expects are heard as
    such and numbers come out as digits. None when there is nothing to add."""
    parts: list[str] = []
    if session_prompt:
        parts.append(session_prompt.strip())
    if flow is not None:
        names = list(tool_names) or list(flow.tools)
        for name in names:
            hints = flow.tool_hints.get(name)
            if hints is not None:
                parts.extend(_sentence(e) for e in hints.examples[:3])
        if flow.transfer_targets:
            parts.append(f"Transfer to {', '.join(flow.transfer_targets)}.")
    text = " ".join(p for p in parts if p)
    if len(text) > MAX_PROMPT_CHARS:
        text = text[:MAX_PROMPT_CHARS].rsplit(" ", 1)[0]
    return text or None
