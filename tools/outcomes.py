"""Campaign outcome tools: ``opt_out`` and ``record_outcome``.

On an outbound campaign call (``flows/reminder.yaml``) the agent ends every
conversation with an explicit outcome. Both tools write through
``ctx.backends.outcomes`` (the dialer's store), keyed by the call's SID, so the outcome
is in Redis before the agent says goodbye; the dialer reads it when the call completes.
On a call that is not part of a campaign both refuse with ``not_a_campaign_call``.
"""

from __future__ import annotations

from typing import Any

from app.errors import ToolError
from tools.base import Outcomes, Tool, ToolContext

#: Outcomes ``record_outcome`` accepts (``app.dialer.models.RESULT_OUTCOMES``).
OUTCOMES = ("confirmed", "rescheduled", "cancelled", "wrong_person")


class NotCampaignCall(ToolError):
    """The tool only works on outbound campaign calls."""

    code = "not_a_campaign_call"


def _backend(ctx: ToolContext) -> Outcomes:
    backend = ctx.backends.outcomes
    if backend is None:
        raise NotCampaignCall("campaign outcomes are not available on this line")
    return backend


async def opt_out(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``{reason?}`` → ``{ok, opted_out: true}``. Raises ``NotCampaignCall``."""
    reason = str(args.get("reason") or "asked not to be called again")
    if not await _backend(ctx).opt_out(ctx.call.call_sid, reason):
        raise NotCampaignCall("this call is not part of a campaign")
    return {"ok": True, "opted_out": True}


async def record_outcome(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``{outcome, new_time?, note?}`` → ``{ok, recorded}``. ``new_time`` is required for
    ``rescheduled``. Raises ``NotCampaignCall``."""
    outcome = str(args["outcome"])
    new_time = str(args.get("new_time") or "").strip()
    if outcome == "rescheduled" and not new_time:
        raise ToolError("rescheduled needs new_time: the new date and time the person chose")
    note = str(args.get("note") or "").strip()
    detail = "; ".join(x for x in (f"new time: {new_time}" if new_time else "", note) if x)
    if not await _backend(ctx).record(ctx.call.call_sid, outcome, detail):
        raise NotCampaignCall("this call is not part of a campaign")
    result: dict[str, Any] = {"ok": True, "recorded": outcome}
    if new_time:
        result["new_time"] = new_time
    return result


OPT_OUT = Tool(
    name="opt_out",
    description=(
        'The person asked not to be called again ("stop calling me", "take me off your '
        'list"). Records the opt-out so this campaign never calls the number again. Then '
        "apologise briefly, say goodbye and end the call."
    ),
    parameters={
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "maxLength": 200,
                "description": 'What the person said, e.g. "asked to stop calling".',
            }
        },
        "additionalProperties": False,
    },
    fn=opt_out,
    timeout_ms=2000,
)

RECORD_OUTCOME = Tool(
    name="record_outcome",
    description=(
        "Record how the reminder ended, once the person has decided: confirmed (keeps "
        "the appointment), rescheduled (give new_time as they said it), cancelled, or "
        "wrong_person (not the person we meant to reach). Then say goodbye and end the call."
    ),
    parameters={
        "type": "object",
        "properties": {
            "outcome": {"type": "string", "enum": list(OUTCOMES)},
            "new_time": {
                "type": "string",
                "maxLength": 100,
                "description": 'For rescheduled: the new date and time, e.g. "Friday 3 PM".',
            },
            "note": {"type": "string", "maxLength": 300, "description": "Anything worth noting."},
        },
        "required": ["outcome"],
        "additionalProperties": False,
    },
    fn=record_outcome,
    timeout_ms=2000,
)
