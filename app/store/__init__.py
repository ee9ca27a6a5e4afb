"""Redis storage.

``keys`` (key scheme), ``redis`` (client factory), ``calls`` (call records and streams),
``writer`` (per-call non-blocking write queue), ``tokens`` (one-time stream tokens),
``backends`` (Redis CRM/orders for the tools). Migrations live in ``app.migrate``.
"""
