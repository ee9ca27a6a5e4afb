"""Post-call analysis: a summary and the flow's structured fields for every finished call.

When a call ends (``call.ended``), the ``analysis`` consumer group (whichever instance
claims the event) reads the stored transcript and tool calls and computes the flow's
``analysis:`` section (``flows.analysis``), bounded by ``analysis_timeout_ms`` and
``analysis_concurrency``:

* with an OpenAI (or Azure) Realtime endpoint, an out-of-band text response of the
  configured model (``response.create`` with ``conversation: "none"``, text output:
  ``app.analysis.realtime``);
* offline (the local engine), a deterministic extractive summary and schema-driven field
  filling from the transcript and the tool calls (``app.analysis.local``).

The result is validated against the flow's JSON Schema and stored on the call
(``{p}call:{s}:{sid}:analysis``, ``app.analysis.model.CallAnalysis``); a failure
(timeout, invalid JSON, a schema violation) is stored as ``status: failed`` with the
reason, never raised. ``call.analyzed`` is emitted either way, and a campaign flow's
``campaign_outcome`` field becomes the attempt's result when the call recorded none.
"""
