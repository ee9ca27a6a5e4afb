"""What happens to a contact after an attempt: done with an outcome, or retried when.

Pure functions of the campaign spec, the contact's history and the time the attempt
ended (Unix ms). Retry *k* for an outcome waits ``retry.<outcome>.backoff_s[k-1]``
seconds after the attempt ended, then the next opening of the calling window in the
contact's zone. A contact is done when the outcome is not retryable, its retries or
the campaign's ``max_attempts`` are used up, the next opening falls after the
campaign's end, or the campaign no longer runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.dialer.models import CampaignSpec, Outcome, VoicemailAction
from app.dialer.window import next_open


@dataclass(frozen=True, slots=True)
class Decision:
    """``final`` set: the contact is done with that outcome. Otherwise ``retry_at_ms``
    is when its next attempt is due. ``reason`` explains it (history, logs)."""

    final: Outcome | None
    retry_at_ms: int | None
    reason: str

    @property
    def retry(self) -> bool:
        return self.final is None


def decide(
    spec: CampaignSpec,
    outcome: Outcome,
    *,
    previous: Mapping[str, int],
    attempts: int,
    ended_ms: int,
    tz: str,
    running: bool = True,
) -> Decision:
    """Decide after an attempt that ended with ``outcome`` at ``ended_ms``.

    ``previous``: how many earlier attempts of this contact ended with each outcome (not
    counting this one); ``attempts``: attempts dialled so far including this one;
    ``running``: False once the campaign was cancelled (no more retries).
    """
    rule = spec.retry.rule(outcome)
    if outcome is Outcome.voicemail and spec.voicemail is VoicemailAction.hang_up:
        rule = None
    if rule is None:
        return Decision(outcome, None, f"{outcome.value} is final")
    done = previous.get(outcome.value, 0)
    if done >= rule.retries:
        return Decision(outcome, None, f"{rule.retries} {outcome.value} retries used")
    if attempts >= spec.retry.max_attempts:
        return Decision(outcome, None, f"max_attempts {spec.retry.max_attempts} reached")
    if not running:
        return Decision(outcome, None, "campaign no longer running")
    delay_s = rule.delay_s(done + 1)
    due = next_open(spec.window, ended_ms + delay_s * 1000, tz)
    end = spec.end_ms
    if end is not None and due >= end:
        return Decision(outcome, None, "next calling window opens after the campaign ends")
    return Decision(None, due, f"{outcome.value} retry {done + 1}/{rule.retries} after {delay_s}s")


def carrier_outcome(call_status: str, answered_by: str | None) -> Outcome:
    """The outcome a final Twilio ``CallStatus`` and ``AnsweredBy`` give, before any
    explicit outcome recorded by the agent's tools.

    ``completed`` + ``machine_*`` → ``voicemail``; + ``fax`` → ``fax``; + ``human``,
    ``unknown`` or none → ``answered``; ``busy``/``no-answer`` as named; ``failed`` and
    ``canceled`` → ``failed``.
    """
    if call_status == "busy":
        return Outcome.busy
    if call_status == "no-answer":
        return Outcome.no_answer
    if call_status == "completed":
        if answered_by and answered_by.startswith("machine"):
            return Outcome.voicemail
        if answered_by == "fax":
            return Outcome.fax
        return Outcome.answered
    return Outcome.failed
