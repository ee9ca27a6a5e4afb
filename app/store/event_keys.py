"""Redis keys of the outbound events, webhooks, post-call analysis and transcript search.

Built from the same prefix as ``app.store.keys.Keys`` (``{p}``, default ``sb:``). The
event plumbing that Lua scripts and ``MULTI`` blocks touch together carries one hash tag,
``{ev}``, so it stays in one slot on a Redis Cluster.

=======================================  ======  ==============================================
Key                                      Type    Contents
=======================================  ======  ==============================================
``{p}{ev}:events``                       stream  every event: id (``evt_…``), type, at_ms, body
                                                 (the JSON envelope sent to webhooks). Capped
                                                 (``XADD MAXLEN ~ events_stream_max``). Consumer
                                                 groups: ``webhooks`` (fan-out), ``analysis``,
                                                 ``search``.
``{p}{ev}:once:{type}:{subject}``        string  "1": the event was emitted for this subject
                                                 (a call, a contact); never twice. TTL: retention.
``{p}{ev}:deliveries``                   stream  deliveries due now: ``d`` = JSON {sub, event_id,
                                                 type, attempt, first_at_ms, body}. Group
                                                 ``senders``: whichever instance claims one
                                                 sends it.
``{p}{ev}:retry``                        zset    deliveries waiting for their next attempt
                                                 (member: the JSON, score: due ms).
``{p}{ev}:dead``                         stream  deliveries given up after
                                                 ``webhook_retry_window_s`` (capped).
``{p}{ev}:webhooks``                     hash    subscription id → JSON {id, url, events,
                                                 secret, description, enabled, created_at_ms,
                                                 updated_at_ms}.
``{p}{ev}:webhooks:by_time``             zset    subscription id → created_at_ms (listing).
``{p}{ev}:webhook:{sub_id}:log``         stream  delivery log of one subscription: event_id,
                                                 type, attempt, outcome (delivered|retry|dead|
                                                 skipped), status, error, duration_ms,
                                                 next_at_ms. Capped at ``webhook_log_max``.
``{p}call:{s}:{call_sid}:analysis``      string  JSON post-call analysis (``app.analysis``),
                                                 in the call's shard (``Keys.call``). TTL:
                                                 retention.
``{p}search:t:{term}``                   zset    call_sid → created_at_ms of the calls whose
                                                 transcript holds ``term`` (a normalised word).
                                                 Trimmed to the retention on insert; TTL:
                                                 retention.
``{p}search:indexed``                    zset    call_sid → created_at_ms of indexed calls.
=======================================  ======  ==============================================
"""

from __future__ import annotations

from app.store.keys import Keys

#: Consumer group names on the events stream.
GROUP_WEBHOOKS = "webhooks"
GROUP_ANALYSIS = "analysis"
GROUP_SEARCH = "search"
#: Consumer group on the deliveries stream.
GROUP_SENDERS = "senders"


class EventKeys:
    """Key names of the module docstring, under ``keys.prefix``."""

    __slots__ = ("prefix",)

    def __init__(self, keys: Keys | str) -> None:
        self.prefix = keys.prefix if isinstance(keys, Keys) else keys
        if not self.prefix:
            raise ValueError("the Redis key prefix must not be empty")

    @property
    def _ev(self) -> str:
        return f"{self.prefix}{{ev}}:"

    @property
    def events(self) -> str:
        """Stream of every emitted event."""
        return f"{self._ev}events"

    def once(self, event_type: str, subject: str) -> str:
        """Marker: ``event_type`` was emitted for ``subject``."""
        return f"{self._ev}once:{event_type}:{subject}"

    @property
    def deliveries(self) -> str:
        """Stream of webhook deliveries due now."""
        return f"{self._ev}deliveries"

    @property
    def retry(self) -> str:
        """Sorted set of deliveries waiting for a retry, by due ms."""
        return f"{self._ev}retry"

    @property
    def dead(self) -> str:
        """Stream of dead-lettered deliveries."""
        return f"{self._ev}dead"

    @property
    def webhooks(self) -> str:
        """Hash of webhook subscriptions."""
        return f"{self._ev}webhooks"

    @property
    def webhooks_by_time(self) -> str:
        """Sorted set of subscription ids by creation time."""
        return f"{self._ev}webhooks:by_time"

    def webhook_log(self, sub_id: str) -> str:
        """Stream: one subscription's delivery log."""
        return f"{self._ev}webhook:{sub_id}:log"

    def analysis(self, call_sid: str) -> str:
        """String: a call's post-call analysis (JSON), in its call's slot."""
        return f"{Keys(self.prefix).call(call_sid)}:analysis"

    def search_term(self, term: str) -> str:
        """Sorted set of call SIDs whose transcript holds ``term``."""
        return f"{self.prefix}search:t:{term}"

    @property
    def search_indexed(self) -> str:
        """Sorted set of the call SIDs already indexed."""
        return f"{self.prefix}search:indexed"
