"""``collect_digits``: secure keypad capture, carried out by the call session.

The model calls it to take a card number, PIN or account number on the keypad; the
session (``app.call.keypad``) speaks the prompt, routes the caller's digits away from
the model, the transcript and the logs, and answers the call with
``{"collected": true, "digits": n, "last4": "1234"}`` or
``{"collected": false, "error": {"code": "timeout" | "too_short" | "invalid"}}``. The
flow's ``collect_digits`` settings hold the rules (README "Secure keypad capture").
"""

from __future__ import annotations

from typing import Any

from app.errors import ToolRefused
from tools.base import Tool, ToolContext

NAME = "collect_digits"


async def _not_here(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Never run by the registry: the call session intercepts ``collect_digits``."""
    raise ToolRefused("collect_digits runs only inside a live call")


COLLECT_DIGITS = Tool(
    name=NAME,
    description=(
        "Take a card number, PIN or other number securely on the caller's keypad. The "
        "caller hears a prompt and types the digits; you never hear them and only learn "
        "whether they were collected and their last four digits. Never ask the caller to "
        "say such numbers aloud: call this instead, without saying anything first."
    ),
    parameters={
        "type": "object",
        "properties": {
            "purpose": {
                "type": "string",
                "minLength": 1,
                "maxLength": 40,
                "description": 'What is taken, e.g. "card_number", "pin", "account_number".',
            },
            "prompt": {
                "type": "string",
                "maxLength": 300,
                "description": "What the caller is asked (default: the flow's prompt).",
            },
            "max_digits": {"type": "integer", "minimum": 1, "maximum": 32},
            "min_digits": {"type": "integer", "minimum": 1, "maximum": 32},
        },
        "required": ["purpose"],
        "additionalProperties": False,
    },
    fn=_not_here,
    timeout_ms=1000,
)
