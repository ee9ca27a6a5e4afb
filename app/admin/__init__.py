"""The admin side of Switchboard: API keys, live-call control, call queries, flows, DNC.

``keys`` (hashed API keys with scopes, operator-page sessions, failed-auth limiter),
``dnc`` (do-not-call list; ``is_blocked`` is what the dialer asks), ``live`` (the
cross-instance registry of calls in progress), ``control`` (pub/sub commands to the
instance that holds a call), ``calls`` (filtered, cursor-paginated call listing and call
details with cost), ``flows`` (validate and hot-reload flow files), ``service`` (the
``Admin`` object the app builds at start-up). HTTP lives in ``app.api.routes.admin_*``.
"""
