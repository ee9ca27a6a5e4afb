"""Signed event webhooks: subscriptions, signing, and delivery with retries.

A subscription names a URL, the event types it wants (``app.events.EVENT_TYPES``, or
``*``) and a signing secret. Every event is fanned out into one delivery per matching
subscription; deliveries are sent by whichever instance claims them, retried with
exponential back-off for up to ``webhook_retry_window_s`` (24 h) and then dead-lettered;
every attempt is in the subscription's delivery log. See ``signing`` for the
``Switchboard-Signature`` header and ``dispatch`` for the delivery machinery.
"""
