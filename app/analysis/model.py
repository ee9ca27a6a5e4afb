"""What an analysis reads (``AnalysisInput``) and what it stores (``CallAnalysis``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field


@dataclass(frozen=True, slots=True)
class Turn:
    """One transcript line: ``role`` is ``user`` (the caller) or ``assistant``."""

    role: str
    text: str
    offset_ms: int = 0
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One tool call: its arguments and result as JSON values; ``at_ms``: when it finished,
    in ms since the call record was made (the transcript's clock)."""

    name: str
    arguments: dict[str, Any]
    result: Any
    error: str | None = None
    at_ms: int = 0

    @property
    def ok(self) -> bool:
        if self.error:
            return False
        if isinstance(self.result, dict):
            return self.result.get("ok", True) is not False and self.result.get("found", True)
        return True


@dataclass(frozen=True, slots=True)
class AnalysisInput:
    """A finished call as the analyzers see it."""

    call_sid: str
    flow: str
    direction: str
    end_reason: str
    turns: list[Turn]
    tools: list[ToolUse]
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())

    def transcript_text(self, max_chars: int = 24_000) -> str:
        """``Caller: …`` / ``Agent: …`` lines, the newest kept when over ``max_chars``."""
        lines = []
        for t in self.turns:
            who = "Caller" if t.role == "user" else "Agent"
            cut = " [cut off by the caller]" if t.interrupted else ""
            lines.append(f"{who}: {t.text}{cut}")
        text = "\n".join(lines)
        return text if len(text) <= max_chars else "…" + text[-max_chars:]


class CallAnalysis(BaseModel):
    """A call's post-call analysis, as stored and as the admin API shows it."""

    status: Literal["ok", "failed"]
    engine: Literal["local", "realtime"] = Field(
        description="local: extractive offline analysis; realtime: the Realtime model"
    )
    model: str | None = Field(None, description="The Realtime model, when one was used")
    summary: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    success: bool | None = Field(None, description="The flow's success field, when it has one")
    error: str | None = Field(None, description="Why it failed (status failed)")
    created_at_ms: int
    duration_ms: float
