"""One simulated inbound call, placed into the server exactly as Twilio would
(docs/protocols.md §2):

1. POST the voice webhook ``{base_url}/twilio/voice`` with Twilio's form fields, signed
   (``X-Twilio-Signature``) over ``{public_base_url}/twilio/voice``.
2. Read the TwiML answer: ``<Connect><Stream url=...>`` and its ``<Parameter>`` s (a
   ``<Dial>`` without a stream is a transfer).
3. Run the media stream (:class:`~switchboard_sim.stream.MediaStream`).
4. When the call was redirected through the REST API (``Url=``), fetch that TwiML; a
   ``<Dial>`` there is a transfer. A ``<Dial action=…>`` (a warm transfer) is played to
   its end by the target's rule (:mod:`switchboard_sim.dial`); when its action answers
   with a ``<Connect><Stream>`` the caller is back on a new stream
   (``CallScript.after_transfer``; ``result.after_transfer``).
5. POST the signed call-status callback ``{base_url}/twilio/status``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import httpx

from switchboard_sim.callbacks import HTTP_TIMEOUT_S, Webhooks, call_params, final_status_params
from switchboard_sim.calls import CallScript, LiveCall, SimulatedCallResult, new_stream_sid
from switchboard_sim.dial import TargetRule, play_dial
from switchboard_sim.stream import MediaStream
from switchboard_sim.twiml import DialVerb, parse_answer, parse_dial, parse_dial_verb


class InboundCall:
    """One inbound ``call`` driven by ``script``; ``connect_url``: where the media socket
    really connects (None: the TwiML ``<Stream url>``)."""

    def __init__(
        self,
        webhooks: Webhooks,
        call: LiveCall,
        script: CallScript,
        *,
        connect_url: str | None = None,
        targets: dict[str, TargetRule] | None = None,
    ) -> None:
        """``targets``: what each transfer target does when dialled (default: answers)."""
        self.webhooks = webhooks
        self.call = call
        self.script = script
        self.connect_url = connect_url
        self.targets = targets or {}
        self.result = SimulatedCallResult(
            call_sid=call.sid,
            stream_sid=new_stream_sid(),
            from_number=script.from_number,
            to_number=script.to_number,
        )
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "only while run() runs"
        return self._http

    async def run(self) -> SimulatedCallResult:
        """Run the call to its end. Never raises for call failures: they land in
        ``result.errors`` / ``result.ended_by``."""
        r = self.result
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, trust_env=False) as http:
            self._http = http
            stream = await self._webhook()
            if stream is not None:
                self.call.status = "in-progress"
                self.call.start_time = datetime.now(UTC)
                await stream.run(r.stream_url or "")
                r.said = list(self.call.said)
                if self.call.said_at is not None:
                    r.said_at_ms = (self.call.said_at - stream.t0) * 1000.0 * stream.speed
            self.call.end_time = datetime.now(UTC)
            r.ended_by = self.call.end_reason or "rejected"
            r.transferred_to = r.transferred_to or self.call.transferred_to
            r.redirect_url = self.call.redirect_url
            if r.ended_by == "redirect" and r.redirect_url:
                await self._follow_redirect(r.redirect_url)
            dial = parse_dial_verb(self.call.dial_twiml) if self.call.dial_twiml else None
            if r.ended_by == "transfer" and dial is not None and dial.action:
                await self._warm_transfer(dial)
            if r.http_status is not None and 200 <= r.http_status < 300:
                await self._status_callback()
        r.turn_latencies_ms = [u.latency_ms for u in r.utterances]
        return r

    async def _webhook(self) -> MediaStream | None:
        """POST the voice webhook; the stream its TwiML asks for, or None if the call ends here."""
        r = self.result
        try:
            resp = await self.webhooks.post(
                self.http, "/twilio/voice", call_params(self.call, "ringing")
            )
        except httpx.HTTPError as exc:
            r.add_error(f"voice webhook failed: {exc!r}")
            self.call.request_end("rejected")
            return None
        r.http_status = resp.status_code
        r.twiml = resp.text
        if not 200 <= resp.status_code < 300:
            r.add_error(f"voice webhook answered HTTP {resp.status_code}")
            self.call.request_end("rejected")
            return None
        try:
            answer = parse_answer(resp.text)
        except (ET.ParseError, ValueError) as exc:
            r.add_error(f"voice webhook TwiML unparseable: {exc}")
            self.call.request_end("rejected")
            return None
        if answer.stream_url is None:
            if answer.dial_to is not None:
                self.call.request_end("transfer", transferred_to=answer.dial_to)
            else:
                r.add_error("TwiML has no <Connect><Stream>")
                self.call.request_end("rejected")
            return None
        r.stream_url = answer.stream_url
        params = dict(answer.parameters)
        s = self.script
        if s.override_token is not None:
            params["token"] = s.override_token
        elif s.reuse_token_of is not None:
            params["token"] = s.reuse_token_of.stream_parameters.get("token", "")
        r.stream_parameters = params
        return MediaStream(
            self.webhooks,
            self.http,
            self.call,
            s,
            r,
            connect_url=self.connect_url,
            status_callback=answer.attributes.get("statusCallback"),
        )

    async def _warm_transfer(self, dial: DialVerb) -> None:
        """Play the ``<Dial>`` by the target's rule; a ``<Connect><Stream>`` answer to its
        ``<Dial action>`` brings the caller back on a new stream of the same call."""
        r, call = self.result, self.call
        rec = await play_dial(
            self.webhooks, self.http, call, dial, self.targets.get(dial.target, TargetRule())
        )
        r.dial = rec
        r.errors.extend(rec.errors)
        try:
            answer = parse_answer(rec.action_twiml) if rec.action_twiml else None
        except (ET.ParseError, ValueError) as exc:
            r.add_error(f"<Dial action> TwiML unparseable: {exc}")
            return
        if answer is None or answer.stream_url is None:
            return  # <Hangup/> (or nothing): the call is over
        call.rejoin()
        script = self.script.after_transfer or CallScript(
            from_number=self.script.from_number,
            to_number=self.script.to_number,
            hangup_after_ms=3000,
            max_duration_s=30,
            frame_interval_ms=self.script.frame_interval_ms,
        )
        back = SimulatedCallResult(
            call_sid=call.sid,
            stream_sid=new_stream_sid(),
            from_number=script.from_number,
            to_number=script.to_number,
            twiml=rec.action_twiml,
            http_status=rec.http_statuses.get("dial-action"),
            stream_url=answer.stream_url,
            stream_parameters=dict(answer.parameters),
        )
        stream = MediaStream(
            self.webhooks,
            self.http,
            call,
            script,
            back,
            connect_url=self.connect_url,
            status_callback=answer.attributes.get("statusCallback"),
        )
        await stream.run(answer.stream_url)
        call.end_time = datetime.now(UTC)
        back.ended_by = call.end_reason or "rejected"
        back.transferred_to = call.transferred_to
        back.turn_latencies_ms = [u.latency_ms for u in back.utterances]
        r.after_transfer = back

    async def _status_callback(self) -> None:
        """POST the final call-status callback to ``{base_url}/twilio/status``."""
        params = final_status_params(self.call, "completed", 0)
        try:
            resp = await self.webhooks.post(self.http, "/twilio/status", params)
        except httpx.HTTPError as exc:
            self.result.add_error(f"status callback failed: {exc!r}")
            return
        self.result.status_callback_http_status = resp.status_code
        if not 200 <= resp.status_code < 300:
            self.result.add_error(f"status callback answered HTTP {resp.status_code}")

    async def _follow_redirect(self, url: str) -> None:
        """Fetch the TwiML a REST ``Url=`` update points at; a ``<Dial>`` there is a transfer."""
        try:
            params = call_params(self.call, "in-progress")
            resp = await self.webhooks.post(self.http, url, params)
            dial = parse_dial(resp.text) if 200 <= resp.status_code < 300 else None
        except (httpx.HTTPError, ET.ParseError) as exc:
            self.result.add_error(f"redirect URL fetch failed: {exc!r}")
            return
        if dial is not None:
            self.result.transferred_to = dial
