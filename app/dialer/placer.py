"""Placing and steering outbound calls through Twilio's REST API (docs/protocols.md §2
"Outbound calls and live control"), with the official ``twilio`` client.

Offline the client is pointed at the carrier simulator (``client.api.base_url``). The
client is synchronous, so each request runs in a worker thread under
``asyncio.timeout`` and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.errors import DialFailed
from app.phone import mask

log = logging.getLogger(__name__)

#: Call progress events requested on every outbound call.
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


@dataclass(frozen=True, slots=True)
class OutboundCall:
    """One ``calls.create``: ``url`` answers the call with TwiML (the voice webhook);
    ``status_callback``/``amd_callback`` receive the progress and AMD callbacks;
    ``ring_timeout_s`` is Twilio ``Timeout``, ``time_limit_s`` ``TimeLimit``."""

    to: str
    from_: str
    url: str
    status_callback: str
    amd_callback: str | None
    ring_timeout_s: int
    time_limit_s: int


@dataclass(frozen=True, slots=True)
class CarrierCallState:
    """``CallStatus`` and ``AnsweredBy`` (None when absent) of a call, as the API reports."""

    status: str
    answered_by: str | None


def never_connected(exc: BaseException) -> OSError | None:
    """The ``ConnectionRefusedError`` or ``socket.gaierror`` (name not resolved) behind
    ``exc``, if any: the connection never opened, so no request reached the carrier.
    Follows ``args`` (``requests`` wraps urllib3's ``MaxRetryError``), its ``reason`` and
    ``__cause__``/``__context__``."""
    todo: list[object] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError | socket.gaierror):
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args[:1]]
    return None


class CallPlacer:
    """Create, update and read calls. ``base_url``: REST base (None: Twilio itself);
    ``timeout_s``: per request."""

    def __init__(
        self, account_sid: str, auth_token: str, base_url: str | None = None, timeout_s: float = 10
    ) -> None:
        self.client = Client(
            account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_s)
        )
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def _run(self, what: str, fn: object) -> object:
        try:
            async with asyncio.timeout(self.timeout_s + 1):
                return await asyncio.to_thread(fn)  # type: ignore[arg-type]
        except TwilioRestException as exc:
            definite = 400 <= int(exc.status) < 500
            raise DialFailed(
                f"{what}: HTTP {exc.status} code {exc.code}: {exc.msg}",
                definite=definite,
                code=int(exc.code) if isinstance(exc.code, int) else None,
            ) from exc
        except (TwilioException, OSError, TimeoutError) as exc:
            refused = never_connected(exc)
            if refused is not None:  # no request was sent: certainly no call
                base = self.client.api.base_url
                raise DialFailed(
                    f"{what}: cannot connect to {base}: {refused}", definite=True
                ) from exc
            raise DialFailed(f"{what}: {type(exc).__name__}: {exc}", definite=False) from exc

    async def create(self, call: OutboundCall) -> str:
        """Place ``call``; returns its ``CallSid``. Raises ``DialFailed``: ``definite``
        when Twilio refused it (HTTP 4xx) or the connection never opened (refused, name
        not resolved: ``never_connected``), so no call exists."""
        kwargs: dict[str, object] = {
            "to": call.to,
            "from_": call.from_,
            "url": call.url,
            "method": "POST",
            "status_callback": call.status_callback,
            "status_callback_event": STATUS_EVENTS,
            "status_callback_method": "POST",
            "timeout": call.ring_timeout_s,
            "time_limit": call.time_limit_s,
        }
        if call.amd_callback:
            kwargs.update(
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=call.amd_callback,
                async_amd_status_callback_method="POST",
            )

        def run() -> str:
            return str(self.client.calls.create(**kwargs).sid)

        sid = await self._run(f"calls.create to {mask(call.to)}", run)
        return str(sid)

    async def update_twiml(self, call_sid: str, twiml: str) -> None:
        """Replace a live call's TwiML (ends its media stream). Raises ``DialFailed``."""
        await self._run(
            f"calls({call_sid}).update", lambda: self.client.calls(call_sid).update(twiml=twiml)
        )

    async def hangup(self, call_sid: str) -> None:
        """End a call (``status=completed``). Raises ``DialFailed``."""
        await self._run(
            f"calls({call_sid}).update",
            lambda: self.client.calls(call_sid).update(status="completed"),
        )

    async def fetch(self, call_sid: str) -> CarrierCallState | None:
        """The call's status as the carrier reports it (None: unknown call, HTTP 404).
        Raises ``DialFailed`` for other failures."""

        def run() -> CarrierCallState:
            c = self.client.calls(call_sid).fetch()
            return CarrierCallState(str(c.status), getattr(c, "answered_by", None) or None)

        try:
            state = await self._run(f"calls({call_sid}).fetch", run)
        except DialFailed as exc:
            cause = exc.__cause__
            if isinstance(cause, TwilioRestException) and int(cause.status) == 404:
                return None
            raise
        assert isinstance(state, CarrierCallState)
        return state
