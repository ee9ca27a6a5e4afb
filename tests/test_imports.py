"""Imports that cannot fail on a valid install."""

from __future__ import annotations

import subprocess
import sys

import pytest

_WITHOUT_SPEEDUPS = """
import sys
sys.modules["websockets.speedups"] = None  # as on a pure-Python build of websockets
import importlib
importlib.import_module({module!r})
print("ok")
"""


@pytest.mark.parametrize(
    "module", ["app.call.links", "app.call.media_server", "bench.loadgen", "bench.echo"]
)
def test_modules_import_without_the_optional_websockets_c_extension(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SPEEDUPS.format(module=module)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
