"""``send_dtmf``: press keys on the far end's IVR (outbound calls), carried out by the
call session.

The model calls it with the keys to press (``0-9``, ``*``, ``#``, ``A-D``; ``w`` waits
500 ms); the session streams the tones (``app.call.dtmf``: ITU-T Q.23 frequencies, Q.24
timing) as outbound media and answers once the carrier has played them (their mark came
back): ``{"ok": true, "sent": "1w2#", "duration_ms": 900}``.
"""

from __future__ import annotations

from typing import Any

from app.errors import ToolRefused
from tools.base import Tool, ToolContext

NAME = "send_dtmf"


async def _not_here(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Never run by the registry: the call session intercepts ``send_dtmf``."""
    raise ToolRefused("send_dtmf runs only inside a live call")


SEND_DTMF = Tool(
    name=NAME,
    description=(
        "Press keys on the phone keypad, to navigate an automated phone menu (IVR) you "
        'reached. digits: the keys in order, e.g. "2" for option 2 or "1234#"; "w" waits '
        "half a second. Listen to the menu first; press only what it asks for."
    ),
    parameters={
        "type": "object",
        "properties": {
            "digits": {
                "type": "string",
                "pattern": "^[0-9A-D*#w]{1,32}$",
                "description": "Keys to press: 0-9, *, #, A-D; w is a 0.5 s pause.",
            }
        },
        "required": ["digits"],
        "additionalProperties": False,
    },
    fn=_not_here,
    timeout_ms=1000,
)
