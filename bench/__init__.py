"""Benchmarks: ``python -m bench [SECTION ...] [-- SECTION-ARGS]`` (``make bench`` runs all).

Sections are registered in ``SECTIONS`` by name as ``"module:function"``; each function
takes the section's own command-line arguments (``list[str]``) and prints its report.
``python -m bench load`` runs one; with no name every section runs in order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

#: Section name → ``"module:function(argv: list[str]) -> None"`` (imported lazily).
SECTIONS: dict[str, str] = {
    "engine": "bench.engine:main",
    "load": "bench.load:main",
}


def section(name: str) -> Callable[[list[str]], None]:
    """The entry function of section ``name``. Raises ``KeyError`` for an unknown name."""
    module, _, func = SECTIONS[name].partition(":")
    entry: Callable[[list[str]], None] = getattr(importlib.import_module(module), func)
    return entry
