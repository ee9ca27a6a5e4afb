"""Browser tests: headless Debian Chromium driven by Playwright for Python."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.admin.conftest import admin, make_admin  # noqa: F401
from tests.e2e.conftest import make_stack  # noqa: F401

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    """The system Chromium (Debian package ``chromium``); Playwright's own is never used."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium. Skips only when no Chromium binary is installed."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium binary: scripts/setup.sh installs the Debian 'chromium' package")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$SWITCHBOARD_SCREENSHOT_DIR`` if set, else the test's tmp dir."""
    d = Path(os.environ.get("SWITCHBOARD_SCREENSHOT_DIR") or tmp_path / "screens")
    d.mkdir(parents=True, exist_ok=True)
    return d
