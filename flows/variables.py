"""Per-contact variables in flow text: ``{{name}}`` placeholders.

Outbound flows (e.g. ``flows/reminder.yaml``) write ``{{first_name}}`` in their
``instructions`` and ``greeting``; a call's flow is filled from its campaign contact's
variables, which the voice webhook stores with the call's one-time stream token (never
taken from the stream's ``customParameters``). A campaign's voicemail message uses the
same placeholders. Unknown placeholders become "" so the model never reads a raw
template. Names are lower-case identifiers (``[a-z_][a-z0-9_]*``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from flows import Flow

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


def placeholders(text: str | None) -> set[str]:
    """Variable names used in ``text``."""
    return set(_PLACEHOLDER.findall(text or ""))


def fill(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced by ``variables[name]`` ("" when missing)."""
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), ""), text)


def flow_placeholders(flow: Flow) -> set[str]:
    """Variable names a flow's instructions and greeting use."""
    return placeholders(flow.instructions) | placeholders(flow.greeting)


def fill_flow(flow: Flow, variables: Mapping[str, str]) -> Flow:
    """A copy of ``flow`` with its instructions and greeting filled from ``variables``."""
    return flow.model_copy(
        update={
            "instructions": fill(flow.instructions, variables),
            "greeting": fill(flow.greeting, variables) if flow.greeting else flow.greeting,
        }
    )
