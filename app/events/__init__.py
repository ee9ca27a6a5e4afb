"""Outbound events: what happened, for business systems (webhooks) and background jobs.

``EventBus.emit`` appends one event to a Redis stream and returns; it never waits for a
receiver. Consumer groups on that stream do the rest, each on whichever instance claims
an entry first: the webhook fan-out (``app.webhooks``), the post-call analysis
(``app.analysis``) and the transcript search index (``app.search``).

Event types (``EVENT_TYPES``) and their ``data``:

* ``call.started``: call_sid, direction, flow, from_masked, to_masked, campaign,
  started_at_ms
* ``call.ended``: the same plus ended_at_ms, duration_s, end_reason, outcome
  (``completed`` or ``aborted``), status
* ``call.analyzed``: call_sid, flow, campaign, analysis (summary, fields, success, …)
* ``transfer.completed``: call_sid, flow, to_masked, reason
* ``campaign.contact_finished``: campaign_id, contact_id, outcome, reason, attempts,
  phone_masked
* ``campaign.finished``: campaign_id, name, status (``completed``/``cancelled``),
  contacts, outcomes

Every event is sent at most once per subject (a call, a contact, a campaign):
``emit_once`` keeps a marker. Phone numbers only ever appear masked.
"""

from app.events.bus import EVENT_TYPES, Event, EventBus, call_event

__all__ = ["EVENT_TYPES", "Event", "EventBus", "call_event"]
