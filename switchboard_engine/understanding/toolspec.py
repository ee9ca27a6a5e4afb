"""A function tool as the session declared it (Realtime ``tools`` entry) plus flow hints."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


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
