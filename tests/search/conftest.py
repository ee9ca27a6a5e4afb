"""Webhook tests run against the full offline stack with admin keys."""

from tests.admin.conftest import admin, make_admin  # noqa: F401
from tests.e2e.conftest import make_stack  # noqa: F401
