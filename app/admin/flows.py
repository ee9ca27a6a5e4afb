"""Validate flow files and reload ``flows/`` into a running service without a restart.

A reload is all or nothing: every ``*.yaml`` in ``Settings.flows_dir`` must parse,
validate, name only registered tools, and together form a valid catalog (unique names,
at most one default). Only then does ``services.flows`` point at the new
``FlowCatalog`` (one assignment, so a webhook sees either the old or the new catalog);
otherwise the running flows stay as they were and the problems are returned. Calls in
progress keep the flow they started with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from app import metrics
from app.errors import ConfigError
from flows import Flow, FlowCatalog, FlowFileError, parse_flow
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from app.deps import Services

log = logging.getLogger(__name__)

#: Largest flow file accepted for validation (bytes).
MAX_FLOW_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class FlowProblem:
    """One problem: the file (or ``<flow>`` for posted text), 1-based line if known, message."""

    file: str
    line: int | None
    message: str


@dataclass
class ReloadResult:
    """``ok``: the new catalog is live. ``added``/``removed``/``changed``: flow names."""

    ok: bool
    flows: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    problems: list[FlowProblem] = field(default_factory=list)


def _tool_lines(text: str) -> dict[int, int]:
    """Line (1-based) of each item of the top-level ``tools`` list, by index."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key, value in node.value:
        if key.value == "tools" and isinstance(value, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}


def check_flow(
    text: str, source: str, registry: ToolRegistry
) -> tuple[Flow | None, list[FlowProblem]]:
    """Parse and validate one flow: ``(flow, [])`` or ``(None, problems)`` with line numbers.

    Checks YAML syntax, the flow schema (``flows.Flow``) and that every tool is registered.
    """
    try:
        flow = parse_flow(text, source)
    except FlowFileError as exc:
        return None, [FlowProblem(source, line, msg) for line, msg in exc.errors]
    lines = _tool_lines(text)
    problems = [
        FlowProblem(source, lines.get(i), f"tools.{i}: unknown tool {name!r}")
        for i, name in enumerate(flow.tools)
        if name not in registry.names()
    ]
    return (None, problems) if problems else (flow, [])


def load_catalog(
    directory: Path, registry: ToolRegistry
) -> tuple[FlowCatalog | None, list[FlowProblem]]:
    """Every flow file in ``directory`` as a catalog, or None with every problem found."""
    flows: dict[str, Flow] = {}
    problems: list[FlowProblem] = []
    paths = sorted(directory.glob("*.yaml"))
    for path in paths:
        try:
            data = path.read_bytes()
            if len(data) > MAX_FLOW_BYTES:
                problems.append(FlowProblem(path.name, None, "file too large"))
                continue
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(FlowProblem(path.name, None, f"cannot read: {exc}"))
            continue
        flow, found = check_flow(text, path.name, registry)
        problems += found
        if flow is None:
            continue
        if flow.name in flows:
            problems.append(FlowProblem(path.name, None, f"duplicate flow name {flow.name!r}"))
            continue
        flows[flow.name] = flow
    if problems:
        return None, problems
    try:
        catalog = FlowCatalog(flows)
        for flow in catalog.flows.values():
            registry.definitions(flow.tools)
    except (ValueError, ConfigError) as exc:
        return None, [FlowProblem(str(directory), None, str(exc))]
    return catalog, []


def reload_flows(services: Services) -> ReloadResult:
    """Reload ``Settings.flows_dir`` into ``services.flows`` if, and only if, all of it is valid."""
    old = services.flows
    catalog, problems = load_catalog(services.settings.flows_dir, services.registry)
    if catalog is None:
        metrics.FLOW_RELOADS.labels("rejected").inc()
        log.warning(
            "flow reload rejected (%d problem(s)); keeping %s", len(problems), sorted(old.flows)
        )
        return ReloadResult(ok=False, flows=sorted(old.flows), problems=problems)
    services.flows = catalog
    metrics.FLOW_RELOADS.labels("ok").inc()
    result = ReloadResult(
        ok=True,
        flows=sorted(catalog.flows),
        added=sorted(set(catalog.flows) - set(old.flows)),
        removed=sorted(set(old.flows) - set(catalog.flows)),
        changed=sorted(
            n for n in set(catalog.flows) & set(old.flows) if catalog.flows[n] != old.flows[n]
        ),
    )
    log.info(
        "flows reloaded: %s (added %s, removed %s, changed %s)",
        result.flows,
        result.added,
        result.removed,
        result.changed,
    )
    return result
