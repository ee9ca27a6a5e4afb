"""Per-contact variables in flow text: ``{{name}}`` placeholders.

Outbound flows (e.g. ``flows/reminder.yaml``) write ``{{first_name}}`` in their
``instructions`` and ``greeting``; the bridge fills them from the contact's variables,
which the voice webhook passes as ``<Parameter name="var_NAME">`` (protocols.md §2: each
name + value under 500 characters). Unknown placeholders become "" so the model never
reads a raw template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from flows import Flow

#: ``<Parameter>`` name prefix that marks a contact variable.
PARAMETER_PREFIX = "var_"
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


def to_parameters(variables: Mapping[str, str]) -> dict[str, str]:
    """Stream ``<Parameter>``s carrying ``variables`` (``var_NAME`` → value)."""
    return {PARAMETER_PREFIX + k: v for k, v in variables.items()}


def from_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """Contact variables from a stream's ``customParameters`` (inverse of ``to_parameters``)."""
    n = len(PARAMETER_PREFIX)
    return {k[n:]: v for k, v in parameters.items() if k.startswith(PARAMETER_PREFIX) and k[n:]}
