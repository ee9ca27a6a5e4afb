"""The operator's page at ``/admin/ui``: server-rendered (Jinja2), no build step.

``routes`` serves login/logout, the dashboard (live calls and the call list, both
refreshing themselves, filters, a search box) and one call's page (its state line and
transcript follow a live call; each agent turn shows its latency; the post-call
analysis; tool calls, routing, usage and cost; hang-up/transfer/say for live calls; a
recording player with turns that seek into it when the call has a recording on this
host). ``pages`` serves transcript search, campaigns (live progress, outcomes,
per-contact attempts, pause/resume/cancel), the do-not-call list, flows (view,
validate, reload) and webhooks (subscriptions and delivery logs); ``common`` what they
share. ``templates/`` and ``static/`` (one CSS and one JS file, no inline script or
style: the pages send a strict Content-Security-Policy) work on a phone-sized screen.
The page's script uses the JSON admin API with the session cookie and sends the
session's CSRF token on every write.
"""
