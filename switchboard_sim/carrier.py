"""Carrier simulator: places calls into the server exactly as Twilio would.

:class:`CarrierSimulator` is the Twilio account the server is configured with: it places
inbound calls (:mod:`switchboard_sim.inbound`) and keeps the registry of live and finished
calls that the fake REST API (:mod:`switchboard_sim.rest`) acts on and that outbound calls
(:mod:`switchboard_sim.outbound`) join. The pieces, one concept each:

- :mod:`switchboard_sim.calls`: the call model (script, result, live call, SIDs);
- :mod:`switchboard_sim.twiml`: TwiML as the simulator reads it;
- :mod:`switchboard_sim.callbacks`: Twilio's webhook/callback parameters, signed and delivered;
- :mod:`switchboard_sim.dial`: the far end of a ``<Dial action>`` (a transfer target's rule);
- :mod:`switchboard_sim.stream`: the media stream (``connected``, ``start``, paced ``media``,
  ``mark`` echoes, ``clear``, ``stop``) over the real WebSocket;
- :mod:`switchboard_sim.playback`: Twilio's outbound playback as a clock-driven model.

Source: docs/protocols.md §2 (Twilio).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

from switchboard_sim.callbacks import Webhooks
from switchboard_sim.calls import CallScript, LiveCall, SimulatedCallResult, new_call_sid
from switchboard_sim.dial import TargetRule
from switchboard_sim.inbound import InboundCall

#: Finished calls kept for the REST fake (GET / late updates).
MAX_FINISHED_CALLS = 1000


class CarrierSimulator:
    """Plays Twilio toward a Switchboard server (docs/protocols.md §2).

    ``base_url``: where the server is actually reached (``http://127.0.0.1:8000``);
    ``public_base_url``: the URL the server believes Twilio uses — webhook
    signatures are computed over it; ``account_sid``/``auth_token``: the Twilio
    account the server is configured with. ``stream_url_override``: connect the
    media socket here instead of the TwiML ``<Stream url>`` (the handshake is still
    signed over the TwiML URL), e.g. when the public URL is a tunnel.
    """

    def __init__(
        self,
        base_url: str,
        public_base_url: str,
        account_sid: str,
        auth_token: str,
        *,
        stream_url_override: str | None = None,
    ) -> None:
        self.webhooks = Webhooks(base_url, public_base_url, auth_token)
        """Signs and delivers the requests Twilio makes to the server."""
        self.base_url = self.webhooks.base_url
        self.public_base_url = self.webhooks.public_base_url
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.stream_url_override = stream_url_override
        self.live_calls: dict[str, LiveCall] = {}
        """Calls in progress by CallSid (the fake REST API acts on these)."""
        self.finished_calls: OrderedDict[str, LiveCall] = OrderedDict()
        """The last ``MAX_FINISHED_CALLS`` ended calls by CallSid."""
        self.targets: dict[str, TargetRule] = {}
        """What each transfer target (number or SIP URI) does when a ``<Dial action>``
        rings it (:mod:`switchboard_sim.dial`); unlisted targets answer."""

    def finish_call(self, call: LiveCall) -> None:
        """Move ``call`` from the live registry to the finished ones."""
        self.live_calls.pop(call.sid, None)
        self.finished_calls[call.sid] = call
        while len(self.finished_calls) > MAX_FINISHED_CALLS:
            self.finished_calls.popitem(last=False)

    def get_call(self, call_sid: str) -> LiveCall | None:
        """A live or recently finished call, or None."""
        return self.live_calls.get(call_sid) or self.finished_calls.get(call_sid)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """``X-Twilio-Signature`` for ``url`` and form ``params`` (HMAC-SHA1, base64)."""
        return self.webhooks.sign(url, params)

    async def place_inbound_call(self, script: CallScript) -> SimulatedCallResult:
        """Place one inbound call and run it to the end. Never raises for call failures:
        they land in ``result.errors`` / ``result.ended_by``."""
        call = LiveCall(
            sid=new_call_sid(),
            account_sid=self.account_sid,
            from_number=script.from_number,
            to_number=script.to_number,
        )
        self.live_calls[call.sid] = call
        try:
            run = InboundCall(
                self.webhooks,
                call,
                script,
                connect_url=self.stream_url_override,
                targets=self.targets,
            )
            return await run.run()
        finally:
            call.end_time = call.end_time or datetime.now(UTC)
            call.status = "completed"
            if call.end_reason is None:
                call.end_reason = "rejected"
            call.ended.set()
            self.finish_call(call)
