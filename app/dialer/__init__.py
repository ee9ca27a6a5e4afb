"""Outbound campaigns: a dialer that is polite, exact and crash-safe (issue 4).

Modules: ``models`` (campaign spec, contacts, outcomes), ``contacts`` (CSV/JSON import
with row-numbered errors), ``window`` (calling windows in local time), ``policy``
(retry and voicemail decisions), ``store`` (Redis + Lua: leases, concurrency, CPS),
``service`` (``Campaigns``: management and carrier callbacks), ``runner`` (``Dialer``),
``placer`` (Twilio REST), ``outcomes`` (backend of the ``opt_out``/``record_outcome``
tools), ``variables`` (``{{name}}`` in flows), ``clock`` (injectable time), ``runtime``
(wiring from ``Settings``).
"""
