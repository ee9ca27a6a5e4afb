"""Call control tools: ``transfer_call`` and ``end_call``.

Both only *request* an effect through ``ctx.control``; the call session carries it out
after the current audio has played.
"""

from __future__ import annotations

from typing import Any

from app.errors import ToolError
from app.phone import is_e164, mask, normalize
from tools.base import Tool, ToolContext


class UnknownTarget(ToolError):
    """The transfer target is neither a flow target name nor an allowed E.164 number."""

    code = "unknown_target"


def resolve_target(target: str, targets: dict[str, str], *, allow_numbers: bool) -> str:
    """E.164 number for ``target``: a name in ``targets`` (case-insensitive) or, when
    ``allow_numbers``, an E.164 number. Raises ``UnknownTarget`` otherwise."""
    wanted = target.strip()
    if wanted in targets:
        return targets[wanted]
    by_lower = {name.lower(): number for name, number in targets.items()}
    if wanted.lower() in by_lower:
        return by_lower[wanted.lower()]
    if allow_numbers and wanted.startswith("+"):
        try:
            number = normalize(wanted)
        except ValueError:
            number = ""
        if is_e164(number):
            return number
    names = ", ".join(sorted(targets)) or "none"
    raise UnknownTarget(f"unknown transfer target {mask(wanted)!r}; known targets: {names}")


def make_transfer_call(*, allow_numbers: bool = True) -> Tool:
    """The ``transfer_call`` tool. ``allow_numbers=False`` accepts only the flow's named
    targets (recommended in production: a caller cannot talk the model into dialling
    an arbitrary number)."""

    async def transfer_call(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """``{target, reason?, mode?}`` → ``{ok, transferring_to: masked number, mode}``
        (``mode`` ``cold`` or ``warm``; absent: the flow's ``transfer.mode``).

        Raises ``UnknownTarget``; ``ctx.control.request_transfer`` may raise
        ``ToolRefused`` (a transfer was already requested).
        """
        number = resolve_target(
            str(args["target"]), ctx.call.transfer_targets, allow_numbers=allow_numbers
        )
        reason = str(args.get("reason") or "caller asked for a transfer")
        mode = str(args["mode"]) if args.get("mode") else None
        ctx.control.request_transfer(number, reason, mode)
        # Recorded only once the transfer was accepted, so a refused one leaves no trace.
        ctx.control.record_routing(target=number, reason=reason)
        out: dict[str, Any] = {"ok": True, "transferring_to": mask(number)}
        if mode:
            out["mode"] = mode
        return out

    target_help = 'a target name from this line\'s list, such as "human" for a person' + (
        ", or a phone number in E.164 form (+15550109999)" if allow_numbers else ""
    )
    return Tool(
        name="transfer_call",
        description=(
            "Transfer the caller to a person or another line. Use it when the caller asks "
            "for a human or when you cannot help. Tell the caller you are transferring "
            "them before calling it. target is " + target_help + ". Only one transfer per "
            "call is allowed; a second one is refused."
        ),
        parameters={
            "type": "object",
            "properties": {
                "target": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "description": "Where to transfer: " + target_help + ".",
                },
                "reason": {
                    "type": "string",
                    "maxLength": 200,
                    "description": 'Short reason, e.g. "caller asked for a person".',
                },
                "mode": {
                    "type": "string",
                    "enum": ["cold", "warm"],
                    "description": (
                        "warm: ring the person first and brief them; if nobody takes the "
                        "call you get the caller back. cold: hand the call straight over. "
                        "Leave it out for this line's default."
                    ),
                },
            },
            "required": ["target"],
            "additionalProperties": False,
        },
        fn=transfer_call,
        timeout_ms=2000,
    )


async def end_call(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``{reason?}`` → ``{ok, ending: true}``; hang-up happens after the goodbye plays."""
    ctx.control.request_hangup(str(args.get("reason") or "conversation finished"))
    return {"ok": True, "ending": True}


TRANSFER_CALL = make_transfer_call()

END_CALL = Tool(
    name="end_call",
    description=(
        "Hang up the call. Say goodbye first, in the same turn; the line is closed after "
        "your goodbye has played. Use it only when the caller is done or asks to end the call."
    ),
    parameters={
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "maxLength": 200,
                "description": 'Short reason, e.g. "caller said goodbye".',
            }
        },
        "additionalProperties": False,
    },
    fn=end_call,
    timeout_ms=2000,
)
