"""Retired: ``{{name}}`` placeholders live in :mod:`flows.variables` (the dialer imports
them from there). Only ``fill_flow`` is still named here, for ``app/call/bridge.py``
until it imports ``flows.variables``; then this module goes.
"""

from __future__ import annotations

from flows.variables import fill_flow as fill_flow
