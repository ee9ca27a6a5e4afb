"""Live call control over Twilio's REST API (protocols.md §2 "Outbound calls and live control").

Uses the official ``twilio`` client, pointed at ``Settings.twilio_api_base_url`` when set
(the carrier simulator offline). The client is synchronous, so calls run in a worker
thread and never block the event loop.
"""

from __future__ import annotations

import asyncio
import logging

from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from app.carrier.twiml import dial
from app.errors import SwitchboardError
from app.phone import mask

log = logging.getLogger(__name__)


class CarrierRestError(SwitchboardError):
    """The carrier's REST API refused or failed a request."""


class TwilioCalls:
    """Hang up or transfer a live call by its ``CallSid``."""

    def __init__(
        self, account_sid: str, auth_token: str, base_url: str | None = None, timeout_s: float = 10
    ) -> None:
        self.client = Client(account_sid, auth_token)
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def _update(self, call_sid: str, **kwargs: str) -> None:
        def run() -> None:
            self.client.calls(call_sid).update(**kwargs)

        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # lands in the same iteration as the result, leaving the call's task running.
            async with asyncio.timeout(self.timeout_s):
                await asyncio.to_thread(run)
        except (TwilioException, OSError, TimeoutError) as exc:
            raise CarrierRestError(f"call update for {call_sid} failed: {exc}") from exc

    async def hangup(self, call_sid: str) -> None:
        """``calls(sid).update(status="completed")``. Raises ``CarrierRestError``."""
        await self._update(call_sid, status="completed")

    async def transfer(self, call_sid: str, to_number: str) -> None:
        """``calls(sid).update(twiml="<Response><Dial>…</Dial></Response>")``.

        Raises ``CarrierRestError``."""
        log.info("transferring call to %s", mask(to_number))
        await self._update(call_sid, twiml=dial(to_number))
