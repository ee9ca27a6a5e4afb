"""Fake Twilio REST API acting on the simulator's live calls (docs/protocols.md §2 "Outbound calls
and live control").

Served in-process by uvicorn on loopback. The official ``twilio`` client reaches it
with ``client.api.base_url = fake.base_url``. Implemented:

- ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` (HTTP Basic
  ``AccountSid:AuthToken``), form fields ``Status=completed|canceled`` (hang up),
  ``Twiml=<Response><Dial>+1...</Dial></Response>`` (transfer; TwiML without
  ``<Dial>`` ends the stream as a hang-up) or ``Url=`` (redirect: the simulator
  fetches that TwiML; a ``<Dial>`` there is a transfer). Like Twilio when a call
  leaves ``<Connect>``, the simulator then sends ``stop``, closes the media socket
  and posts the status callback.
- ``GET`` of the same resource.
- ``GET /2010-04-01/Accounts/{AccountSid}.json``: the account (``active``), as
  ``switchboard doctor`` fetches it to check the credentials.

- ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json``: place an outbound call with
  Twilio's form fields (``To``, ``From``, ``Url`` or ``Twiml``, ``StatusCallback``,
  repeated ``StatusCallbackEvent``, ``MachineDetection``, ``AsyncAmd``,
  ``AsyncAmdStatusCallback``, ``Timeout``, ``TimeLimit``); answers 201 with the call
  resource (``queued``) and plays the call out by the rule for its number
  (:mod:`switchboard_sim.outbound`). A TwiML update with ``<Say>`` (a voicemail message) is
  recorded on the call before it ends.

Errors use Twilio's JSON shape ``{code, message, more_info, status}``: 401/20003
for bad credentials, 404/20404 for an unknown call, 400/21220 for updating a call
that is no longer in progress; for ``Calls.json`` 400 with 21201/21211 (missing or
invalid ``To``), 21213/21212 (``From``), 21205 (no ``Url``/``Twiml``) and 21626 (bad
``StatusCallbackEvent``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import secrets
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.phone import is_e164
from switchboard_sim.callbacks import API_VERSION, HTTP_TIMEOUT_S
from switchboard_sim.calls import LiveCall
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.outbound import EVENTS, OutboundDesk, OutboundRefused
from switchboard_sim.serve import LoopbackServer
from switchboard_sim.twiml import parse_dial, parse_say

#: Requests remembered in :attr:`TwilioRestFake.requests`.
MAX_LOGGED_REQUESTS = 1000


@dataclass(frozen=True, slots=True)
class RestRequest:
    """One request the fake answered (form ``params`` as sent)."""

    method: str
    path: str
    params: dict[str, str]
    status: int


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """A Twilio-shaped JSON error response."""
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
        headers=headers,
    )


def _rfc2822(dt: datetime | None) -> str | None:
    return None if dt is None else format_datetime(dt)


def call_resource(call: LiveCall, status: str | None = None) -> dict[str, Any]:
    """The Twilio call resource JSON for ``call`` (``status`` overrides its status)."""
    uri = f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.sid}.json"
    base = uri.removesuffix(".json")
    duration = call.duration_s
    return {
        "account_sid": call.account_sid,
        "annotation": None,
        "answered_by": call.answered_by,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": _rfc2822(call.created_at),
        "date_updated": _rfc2822(call.end_time or call.start_time or call.created_at),
        "direction": call.direction,
        "duration": None if duration is None else str(duration),
        "end_time": _rfc2822(call.end_time),
        "forwarded_from": None,
        "from": call.from_number,
        "from_formatted": call.from_number,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": call.sid,
        "start_time": _rfc2822(call.start_time),
        "status": status or call.status,
        "subresource_uris": {
            "notifications": f"{base}/Notifications.json",
            "recordings": f"{base}/Recordings.json",
            "payments": f"{base}/Payments.json",
            "events": f"{base}/Events.json",
            "siprec": f"{base}/Siprec.json",
            "streams": f"{base}/Streams.json",
            "transcriptions": f"{base}/Transcriptions.json",
            "user_defined_message_subscriptions": f"{base}/UserDefinedMessageSubscriptions.json",
            "user_defined_messages": f"{base}/UserDefinedMessages.json",
        },
        "to": call.to_number,
        "to_formatted": call.to_number,
        "trunk_sid": None,
        "uri": uri,
    }


class TwilioRestFake:
    """The fake REST API for ``simulator``'s calls, on ``http://host:port`` (``port=0``: any).

    ``outbound``: the desk that places the calls ``Calls.json`` creates (None: a new
    :class:`~switchboard_sim.outbound.OutboundDesk` for ``simulator``).
    """

    def __init__(
        self,
        simulator: CarrierSimulator,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        outbound: OutboundDesk | None = None,
    ) -> None:
        self.simulator = simulator
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: deque[RestRequest] = deque(maxlen=MAX_LOGGED_REQUESTS)
        """The last requests answered, oldest first."""
        self.outbound = outbound if outbound is not None else OutboundDesk(simulator)
        """Outbound calls: ``outbound.rules`` says what each number does."""
        self.app = FastAPI(title="Twilio REST fake", openapi_url=None, docs_url=None)
        prefix = f"/{API_VERSION}/Accounts/{{account_sid}}"
        self.app.add_api_route(
            prefix + "/Calls/{call_sid}.json", self._update_call, methods=["POST"]
        )
        self.app.add_api_route(prefix + "/Calls/{call_sid}.json", self._get_call, methods=["GET"])
        self.app.add_api_route(prefix + "/Calls.json", self._create_call, methods=["POST"])
        self.app.add_api_route(
            prefix + "/Calls/{call_sid}/Recordings.json", self._create_recording, methods=["POST"]
        )
        self.recordings: dict[str, dict[str, str]] = {}
        """Recordings started (``Calls/{sid}/Recordings.json``) by RecordingSid: the
        request's parameters, and ``callbacks``: the statuses delivered and their HTTP
        answers (``completed:204``)."""
        self._reporters: set[asyncio.Task[None]] = set()
        self.app.add_api_route(prefix + ".json", self._get_account, methods=["GET"])
        self._server = LoopbackServer(self.app, host=host, port=port)

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (after :meth:`start`); use as ``client.api.base_url``."""
        return self._server.base_url

    async def start(self) -> None:
        """Start serving on loopback."""
        await self._server.start()

    async def stop(self) -> None:
        """Stop serving and abandon outbound calls still playing out."""
        await self.outbound.cancel_all()
        for task in list(self._reporters):
            task.cancel()
        await self._server.stop()

    # ------------------------------------------------------------------ helpers
    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(
            password, self.auth_token
        )

    async def _check(
        self, request: Request, account_sid: str
    ) -> tuple[dict[str, str], JSONResponse | None]:
        params = dict(parse_qsl((await request.body()).decode(errors="replace")))
        if not self._authorized(request):
            return params, twilio_error(401, 20003, "Authenticate")
        if account_sid != self.account_sid:
            return params, self._not_found(request)
        return params, None

    @staticmethod
    def _not_found(request: Request) -> JSONResponse:
        return twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")

    def _log(self, request: Request, params: dict[str, str], resp: JSONResponse) -> JSONResponse:
        entry = RestRequest(request.method, request.url.path, params, resp.status_code)
        self.requests.append(entry)
        return resp

    # ------------------------------------------------------------------- routes
    async def _get_call(self, request: Request, account_sid: str, call_sid: str) -> JSONResponse:
        params, err = await self._check(request, account_sid)
        if err is not None:
            return self._log(request, params, err)
        call = self.simulator.get_call(call_sid)
        if call is None:
            return self._log(request, params, self._not_found(request))
        return self._log(request, params, JSONResponse(call_resource(call)))

    async def _get_account(self, request: Request, account_sid: str) -> JSONResponse:
        params, err = await self._check(request, account_sid)
        if err is not None:
            return self._log(request, params, err)
        resource = {
            "sid": self.account_sid,
            "owner_account_sid": self.account_sid,
            "friendly_name": "Switchboard carrier simulator",
            "status": "active",
            "type": "Full",
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}.json",
        }
        return self._log(request, params, JSONResponse(resource))

    async def _update_call(self, request: Request, account_sid: str, call_sid: str) -> JSONResponse:
        params, err = await self._check(request, account_sid)
        if err is not None:
            return self._log(request, params, err)
        call = self.simulator.get_call(call_sid)
        if call is None:
            return self._log(request, params, self._not_found(request))
        return self._log(request, params, self._apply_update(call, params))

    def _apply_update(self, call: LiveCall, params: dict[str, str]) -> JSONResponse:
        status = params.get("Status")
        twiml = params.get("Twiml")
        url = params.get("Url")
        if status is not None:
            if status not in ("completed", "canceled"):
                return twilio_error(400, 20001, f"Invalid Status {status!r}")
            call.request_end("hangup")
            return JSONResponse(call_resource(call, status="completed"))
        if twiml is None and url is None:
            return twilio_error(400, 20001, "One of Status, Twiml or Url is required")
        if not call.is_live:
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if twiml is not None:
            try:
                dial_to = parse_dial(twiml)
            except ET.ParseError:
                return twilio_error(400, 12100, "Document parse failure")
            if dial_to is not None:
                call.dial_twiml = twiml
                call.request_end("transfer", transferred_to=dial_to)
            else:
                said = [text for text in parse_say(twiml) if text]
                if said and call.is_live:
                    call.said.extend(said)
                    call.said_at = asyncio.get_running_loop().time()
                call.request_end("hangup")
        elif url is not None:
            call.request_end("redirect", redirect_url=url)
        return JSONResponse(call_resource(call, status="in-progress"))

    async def _create_recording(
        self, request: Request, account_sid: str, call_sid: str
    ) -> JSONResponse:
        """Twilio "Call Recordings" create: the recording runs until the call ends, then
        its ``completed`` status is posted, signed, to ``RecordingStatusCallback``."""
        params, err = await self._check(request, account_sid)
        if err is not None:
            return self._log(request, params, err)
        call = self.simulator.get_call(call_sid)
        if call is None:
            return self._log(request, params, self._not_found(request))
        if not call.is_live:
            return self._log(request, params, twilio_error(400, 21220, "Call is not in-progress."))
        pairs = parse_qsl((await request.body()).decode(errors="replace"))
        events = [v for k, v in pairs if k == "RecordingStatusCallbackEvent"] or ["completed"]
        sid = "RE" + secrets.token_hex(16)
        self.recordings[sid] = {**params, "callbacks": ""}
        task = asyncio.create_task(self._report_recording(call, sid, params, events))
        self._reporters.add(task)
        task.add_done_callback(self._reporters.discard)
        resource = {
            "sid": sid,
            "account_sid": account_sid,
            "call_sid": call_sid,
            "status": "in-progress",
            "channels": 2 if params.get("RecordingChannels") == "dual" else 1,
            "source": "StartCallRecordingAPI",
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call_sid}/Recordings/{sid}.json",
        }
        return self._log(request, params, JSONResponse(resource, status_code=201))

    async def _report_recording(
        self, call: LiveCall, sid: str, params: dict[str, str], events: list[str]
    ) -> None:
        url = params.get("RecordingStatusCallback", "")
        loop = asyncio.get_running_loop()
        started = loop.time()
        channels = "2" if params.get("RecordingChannels") == "dual" else "1"
        base = {
            "AccountSid": self.account_sid,
            "CallSid": call.sid,
            "RecordingSid": sid,
            "RecordingUrl": f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}"
            f"/Recordings/{sid}",
            "RecordingChannels": channels,
            "RecordingSource": "StartCallRecordingAPI",
        }
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
            for status in ("in-progress", "completed"):
                if status == "completed":
                    await call.ended.wait()
                if status not in events or not url:
                    continue
                form = {**base, "RecordingStatus": status}
                if status == "completed":
                    form["RecordingDuration"] = str(int(loop.time() - started))
                try:
                    resp = await self.simulator.webhooks.post(http, url, form)
                    answer = str(resp.status_code)
                except httpx.HTTPError as exc:
                    answer = type(exc).__name__
                done = self.recordings[sid]["callbacks"]
                self.recordings[sid]["callbacks"] = f"{done} {status}:{answer}".strip()

    async def _create_call(self, request: Request, account_sid: str) -> JSONResponse:
        params, err = await self._check(request, account_sid)
        if err is not None:
            return self._log(request, params, err)
        pairs = parse_qsl((await request.body()).decode(errors="replace"))
        events = [v for k, v in pairs if k == "StatusCallbackEvent"]
        return self._log(request, params, self._place(params, events))

    def _place(self, params: dict[str, str], events: list[str]) -> JSONResponse:
        to, from_ = params.get("To", ""), params.get("From", "")
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not is_e164(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            return twilio_error(400, 21213, "No 'From' number is specified")
        if not is_e164(from_):
            return twilio_error(400, 21212, f"Invalid 'From' Phone Number: {from_}")
        if not params.get("Url") and not params.get("Twiml"):
            return twilio_error(400, 21205, "Url parameter is required")
        if any(e not in EVENTS for e in events):
            return twilio_error(400, 21626, "Invalid 'StatusCallbackEvent'")
        try:
            call = self.outbound.place(params, events)
        except OutboundRefused as exc:
            return twilio_error(exc.status, exc.code, exc.message)
        return JSONResponse(call_resource(call, status="queued"), status_code=201)
