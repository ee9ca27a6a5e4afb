"""Validate flow files and reload ``flows/`` into a running service without a restart.

A reload is all or nothing: every ``*.yaml`` in ``Settings.flows_dir`` must parse,
validate, name only registered tools, and together form a valid catalog (unique names,
at most one default). Only then does ``services.flows`` point at the new
``FlowCatalog`` (one assignment, so a webhook sees either the old or the new catalog);
otherwise the running flows stay as they were and the problems are returned. Calls in
progress keep the flow they started with.

Bounded work: a flow text is refused before it is parsed when it is larger than
``flow_max_bytes``, nests deeper than ``flow_max_depth``, has more than
``flow_max_nodes`` YAML nodes once aliases are expanded, or more than
``flow_max_aliases`` aliases (one linear pass over the YAML event stream, libyaml's when
available, no recursion). Parsing and validation then run in a worker thread, one at a
time, within ``flow_parse_timeout_ms`` (``FlowWork``), so the event loop keeps serving
calls and health checks meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from app import metrics
from app.errors import ConfigError, FlowFileError
from app.errors import FlowBusy as FlowBusy  # defined in the one tree, named here too
from app.errors import FlowTooLarge as FlowTooLarge
from flows import Flow, FlowCatalog, parse_flow
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from app.services import Services
    from app.settings import Settings

log = logging.getLogger(__name__)

#: Largest flow file accepted when no limits are given (bytes).
MAX_FLOW_BYTES = 64 * 1024

_EventLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """Bounds on one flow text (see the module docstring); sizes in bytes."""

    max_bytes: int = MAX_FLOW_BYTES
    max_depth: int = 20
    max_nodes: int = 4000
    max_aliases: int = 50

    @classmethod
    def from_settings(cls, settings: Settings) -> FlowLimits:
        return cls(
            max_bytes=settings.flow_max_bytes,
            max_depth=settings.flow_max_depth,
            max_nodes=settings.flow_max_nodes,
            max_aliases=settings.flow_max_aliases,
        )


def precheck(text: str, limits: FlowLimits) -> str | None:
    """Why ``text`` is refused before parsing (nesting, nodes, aliases), or None.

    Raises ``FlowTooLarge`` above ``max_bytes``. YAML syntax errors are left to the
    parser, which reports them with line numbers.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise FlowTooLarge(f"flow text is {size} bytes; the limit is {limits.max_bytes}")
    try:
        return _scan(text, limits, _EventLoader)
    except yaml.YAMLError:
        if _EventLoader is yaml.SafeLoader:
            return None
    try:  # libyaml gave up (it has a nesting limit of its own): count with PyYAML's
        return _scan(text, limits, yaml.SafeLoader)
    except yaml.YAMLError:
        return None  # a syntax error: the parser reports it with its line


def _scan(text: str, limits: FlowLimits, loader: Any) -> str | None:
    """One pass over the YAML events of ``text`` (iterative): the first limit passed."""
    sizes: dict[str, int] = {}  # anchor → nodes it expands to
    frames: list[tuple[str | None, int]] = []  # open collections: (anchor, total before)
    total = depth = aliases = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                return f"more than {limits.max_aliases} YAML aliases"
            total += sizes.get(str(event.anchor), 1)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            total += 1
            depth += 1
            if depth > limits.max_depth:
                return f"YAML nested deeper than {limits.max_depth} levels"
            frames.append((event.anchor, total - 1))
        elif isinstance(event, yaml.CollectionEndEvent) and frames:
            depth -= 1
            anchor, before = frames.pop()
            if anchor:
                sizes[anchor] = total - before
        if total > limits.max_nodes:
            return f"more than {limits.max_nodes} YAML nodes (aliases expanded)"
    return None


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
    text: str, source: str, registry: ToolRegistry, limits: FlowLimits | None = None
) -> tuple[Flow | None, list[FlowProblem]]:
    """Parse and validate one flow: ``(flow, [])`` or ``(None, problems)`` with line numbers.

    Checks the limits (``precheck``), YAML syntax, the flow schema (``flows.Flow``) and
    that every tool is registered. Raises ``FlowTooLarge`` above ``limits.max_bytes``.
    CPU-bound: call it from a worker thread (``FlowWork``) in the service.
    """
    refused = precheck(text, limits or FlowLimits())
    if refused is not None:
        return None, [FlowProblem(source, None, refused)]
    try:
        flow = parse_flow(text, source)
    except FlowFileError as exc:
        return None, [FlowProblem(source, line, msg) for line, msg in exc.errors]
    except RecursionError:
        return None, [FlowProblem(source, None, "YAML nested deeper than Python can parse")]
    lines = _tool_lines(text)
    problems = [
        FlowProblem(source, lines.get(i), f"tools.{i}: unknown tool {name!r}")
        for i, name in enumerate(flow.tools)
        if name not in registry.names()
    ]
    return (None, problems) if problems else (flow, [])


def load_catalog(
    directory: Path, registry: ToolRegistry, limits: FlowLimits | None = None
) -> tuple[FlowCatalog | None, list[FlowProblem]]:
    """Every flow file in ``directory`` as a catalog, or None with every problem found.

    Blocking (file reads, parsing): run it in a worker thread in the service."""
    limits = limits or FlowLimits()
    flows: dict[str, Flow] = {}
    problems: list[FlowProblem] = []
    paths = sorted(directory.glob("*.yaml"))
    for path in paths:
        try:
            with path.open("rb") as f:
                data = f.read(limits.max_bytes + 1)
            if len(data) > limits.max_bytes:
                problems.append(
                    FlowProblem(path.name, None, f"file too large (over {limits.max_bytes} bytes)")
                )
                continue
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(FlowProblem(path.name, None, f"cannot read: {exc}"))
            continue
        flow, found = check_flow(text, path.name, registry, limits)
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


class FlowWork:
    """Runs flow parsing off the event loop: one job at a time in a worker thread, each
    within ``timeout_s`` (waiting for the previous job included).

    A job that overruns keeps the worker until it finishes (a thread cannot be stopped;
    the limits keep any job short), and the caller gets ``FlowBusy`` at the deadline.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flows")
        self._lock = asyncio.Lock()

    def close(self) -> None:
        """Stop the worker (a running job finishes on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the worker. Raises ``FlowBusy`` past the deadline, else what ``fn``
        raises."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                await self._lock.acquire()
        except TimeoutError:
            raise FlowBusy("flow work is busy; try again") from None
        future = loop.run_in_executor(self._pool, fn)
        future.add_done_callback(lambda _: self._lock.release())
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            raise FlowBusy(f"flow work took longer than {self.timeout_s:g} s") from None


async def validate_text(
    services: Services, work: FlowWork, text: str
) -> tuple[Flow | None, list[FlowProblem]]:
    """``check_flow`` on posted text in ``work``'s thread. Raises ``FlowTooLarge`` (checked
    first, on the loop: no work queued) and ``FlowBusy``."""
    limits = FlowLimits.from_settings(services.settings)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise FlowTooLarge(f"flow text is {size} bytes; the limit is {limits.max_bytes}")
    registry = services.registry
    return await work.run(lambda: check_flow(text, "<flow>", registry, limits))


async def reload_flows(services: Services, work: FlowWork) -> ReloadResult:
    """Reload ``Settings.flows_dir`` into ``services.flows`` if, and only if, all of it is
    valid. Files are read and parsed off the event loop; the swap happens on it.
    A reload that overruns ``flow_parse_timeout_ms`` is rejected (``FlowBusy``)."""
    old = services.flows
    limits = FlowLimits.from_settings(services.settings)
    directory, registry = services.settings.flows_dir, services.registry
    catalog, problems = await work.run(lambda: load_catalog(directory, registry, limits))
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
