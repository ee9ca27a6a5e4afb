"""Fixtures of the call-session tests: a fake clock the session reads its time from."""

from __future__ import annotations

import pytest


class Clock:
    """A fake ``now_ms``: tests set ``t`` (ms)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()
