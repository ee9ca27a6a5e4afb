"""Live call control over Twilio's REST API (docs/protocols.md §2 "Outbound calls and live
control").

Uses the official ``twilio`` client, pointed at ``Settings.twilio_api_base_url`` when set
(the carrier simulator offline). The client is synchronous, so calls run in a worker
thread and never block the event loop; every HTTP request has a timeout
(``TwilioHttpClient(timeout=…)``) as well as the ``asyncio`` deadline around it.

Every transfer first passes ``guard`` (the do-not-call list and the transfer policy's
destination rules, ``app.carrier.transfers``): the last check before a call is moved,
whoever asked for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.carrier.twiml import dial, say_then
from app.errors import CarrierRestError as CarrierRestError  # defined in the one tree
from app.errors import TransferRefused as TransferRefused
from app.phone import mask

log = logging.getLogger(__name__)


#: ``guard(number)``: why a transfer to ``number`` must not happen, or None.
TransferGuard = Callable[[str], Awaitable[str | None]]


class TwilioCalls:
    """Hang up or transfer a live call by its ``CallSid``.

    ``timeout_s`` bounds each REST request (connect and read) and the whole call;
    ``guard`` is awaited before every transfer.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        base_url: str | None = None,
        timeout_s: float = 10,
        *,
        guard: TransferGuard | None = None,
    ) -> None:
        self.client = Client(
            account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_s)
        )
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.guard = guard

    async def refusal(self, number: str) -> str | None:
        """Why a transfer to ``number`` would be refused by ``guard``, or None."""
        return await self.guard(number) if self.guard is not None else None

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

    async def transfer(self, call_sid: str, to_number: str, *, twiml: str | None = None) -> None:
        """``calls(sid).update(twiml="<Response><Dial>…</Dial></Response>")``; ``twiml``:
        another ``<Dial>`` document for ``to_number`` (a warm transfer's,
        ``app.carrier.warm.warm_dial``).

        Raises ``TransferRefused`` when ``guard`` refuses the number (no request is
        made), ``CarrierRestError`` when the carrier fails."""
        why = await self.refusal(to_number)
        if why is not None:
            log.error("transfer of %s to %s refused: %s", call_sid, mask(to_number), why)
            raise TransferRefused(f"transfer to {mask(to_number)} refused: {why}")
        log.info("transferring call to %s%s", mask(to_number), " (warm)" if twiml else "")
        await self._update(call_sid, twiml=twiml or dial(to_number))

    async def start_recording(self, call_sid: str, status_callback: str) -> str:
        """Record the live call in two channels (Twilio "Call Recordings":
        ``POST /Calls/{CallSid}/Recordings.json`` with ``RecordingChannels=dual``); its
        status (``in-progress``, ``completed``, ``absent``) is posted, signed, to
        ``status_callback``. Returns the ``RecordingSid``. Raises ``CarrierRestError``."""

        def run() -> str:
            rec = self.client.calls(call_sid).recordings.create(
                recording_channels="dual",
                recording_status_callback=status_callback,
                recording_status_callback_event=["in-progress", "completed", "absent"],
                recording_status_callback_method="POST",
            )
            return str(rec.sid)

        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.to_thread(run)
        except (TwilioException, OSError, TimeoutError) as exc:
            raise CarrierRestError(f"recording of {call_sid} failed: {exc}") from exc

    async def say_then(self, call_sid: str, line: str, to_number: str | None = None) -> None:
        """Speak ``line`` on the call, then transfer to ``to_number`` or hang up: new TwiML
        for the live call, which ends its media stream (the fallback path).

        A refused ``to_number`` is dropped (the call hangs up after the line). Raises
        ``CarrierRestError`` when the carrier fails."""
        if to_number:
            why = await self.refusal(to_number)
            if why is not None:
                log.error("fallback transfer to %s refused: %s", mask(to_number), why)
                to_number = None
        await self._update(call_sid, twiml=say_then(line, to_number))
