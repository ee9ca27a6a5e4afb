"""Security tests run against the full offline stack (the e2e and admin fixtures)."""

from __future__ import annotations

from tests.admin.conftest import admin, make_admin  # noqa: F401
from tests.e2e.conftest import make_stack, stack  # noqa: F401
