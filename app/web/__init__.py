"""The operator's page at ``/admin/ui``: server-rendered (Jinja2), no build step.

``routes`` serves the pages (login with an admin API key → an HttpOnly session cookie,
the dashboard with live calls and the filtered call list, one call's page with its
transcript, tool calls and routing, and hang-up/transfer/say buttons); ``templates/``
and ``static/`` (one CSS and one JS file, no inline script: the pages send a strict
Content-Security-Policy). The page's script polls the JSON admin API with the session
cookie and sends the session's CSRF token on every POST.
"""
