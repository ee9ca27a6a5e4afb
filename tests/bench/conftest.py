"""The bench tests reuse the end-to-end stack (real uvicorn server, Redis, sockets)."""

from tests.e2e.conftest import make_stack

__all__ = ["make_stack"]
