"""Carrier simulator: places calls into the server exactly as Twilio would.

Source: protocols.md §2 (Twilio). One simulated inbound call:

1. POST the voice webhook ``{base_url}/twilio/voice`` with Twilio's form fields,
   signed (``X-Twilio-Signature``) over ``{public_base_url}/twilio/voice``.
2. Parse the TwiML answer: ``<Connect><Stream url=...>`` and its ``<Parameter>`` s.
3. Open the media WebSocket (handshake signed over the stream URL with empty
   params), send ``connected`` and ``start``, then a 20 ms ``media`` frame (160
   bytes of 8 kHz μ-law) on an absolute deadline schedule — caller speech from the
   script, silence (0xFF) between utterances, like a real phone line.
4. Play the server's outbound ``media`` in real time (:class:`~app.sim.playback.Playback`),
   echo each ``mark`` once its audio has played, and on ``clear`` drop the queued
   audio and echo all pending marks at once.
5. End when the server closes the socket, the call is ended or redirected through
   the REST API (:mod:`app.sim.rest`), the caller hangs up or ``max_duration_s``
   passes; send ``stop`` if the socket is still open, then POST the signed
   call-status callback ``{base_url}/twilio/status``.

Times in this module are milliseconds on the *call timeline*: t=0 is when
``start`` is sent. With ``CallScript.frame_interval_ms`` = 20 (the default) it is
wall-clock time; a smaller interval runs the whole call faster (frames still
carry 20 ms of audio, playback and every script time scale alike).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import math
import secrets
import xml.etree.ElementTree as ET
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from app.audio import FRAME_BYTES, FRAME_MS, ULAW_SILENCE
from app.sim.playback import ClearRecord, Playback, PlaybackOverflow, PlayedSpan, played_ms

if TYPE_CHECKING:
    from app.sim.outbound import OutboundDesk

log = logging.getLogger(__name__)

EndReason = Literal[
    "hangup",  # REST update Status=completed (or TwiML without <Dial>)
    "transfer",  # REST update Twiml=<Dial>, or a webhook answering with <Dial>
    "redirect",  # REST update Url=
    "server_closed",  # the server closed the media WebSocket
    "caller_hangup",  # CallScript.hangup_after_ms elapsed after the last utterance
    "timeout",  # CallScript.max_duration_s passed
    "rejected",  # webhook non-2xx / no usable TwiML / WebSocket handshake refused
]

API_VERSION = "2010-04-01"
#: Largest message accepted from the server on the media socket (bytes).
MAX_WS_MESSAGE_BYTES = 1 << 20
#: Bound on ``SimulatedCallResult.errors``.
MAX_ERRORS = 200
#: Finished calls kept for the REST fake (GET / late updates).
MAX_FINISHED_CALLS = 1000
#: Webhook / callback HTTP timeout (s); Twilio's default webhook timeout is 15 s.
HTTP_TIMEOUT_S = 15.0
#: WebSocket open / close handshake timeouts (s).
WS_OPEN_TIMEOUT_S = 10.0
WS_CLOSE_TIMEOUT_S = 2.0


def new_call_sid() -> str:
    """A Twilio-shaped Call SID: ``CA`` + 32 hex digits."""
    return "CA" + secrets.token_hex(16)


def new_stream_sid() -> str:
    """A Twilio-shaped Stream SID: ``MZ`` + 32 hex digits."""
    return "MZ" + secrets.token_hex(16)


@dataclass
class CallScript:
    """What the simulated caller does. All times are ms on the call timeline.

    ``caller_audio``: utterances as 8 kHz μ-law bytes (8 bytes per ms), sent in
    order. Turn taking: utterance k+1 starts once the agent has played audio and
    then been silent for ``gap_ms``, or right away if the agent has not spoken for
    ``first_wait_ms`` since the call started / the previous utterance ended.
    ``barge_in_after_ms`` (one value for every utterance or a per-utterance list):
    instead of waiting for the agent to finish, start the utterance this many ms
    after agent audio started playing. ``dtmf``: ``(at_ms, digit)`` pairs.
    ``override_token``: send this ``token`` custom parameter instead of the TwiML
    one; ``reuse_token_of``: send the token another call received (replay).
    ``extra_raw_messages``: ``(at_ms, text|bytes)`` sent verbatim (text or binary
    frame). ``hangup_after_ms``: once every utterance was sent, the caller hangs
    up after the agent has been silent this long (None: stay on the line).
    ``realtime_pace``: one 160-byte frame every ``frame_interval_ms`` on an
    absolute deadline schedule with silence between utterances; False sends each
    utterance in one burst and no silence. ``frame_interval_ms`` < 20 speeds the
    whole call up (tests).
    """

    from_number: str = "+15005550006"
    to_number: str = "+15005550001"
    caller_audio: list[bytes] = field(default_factory=list)
    gap_ms: int = 700
    first_wait_ms: int = 3000
    barge_in_after_ms: int | Sequence[int | None] | None = None
    max_duration_s: float = 60
    dtmf: list[tuple[int, str]] = field(default_factory=list)
    override_token: str | None = None
    reuse_token_of: SimulatedCallResult | None = None
    extra_raw_messages: list[tuple[int, str | bytes]] = field(default_factory=list)
    hangup_after_ms: int | None = None
    realtime_pace: bool = True
    frame_interval_ms: float = FRAME_MS

    def barge_in_for(self, index: int) -> int | None:
        """The barge-in delay (ms) for utterance ``index``, or None to wait for the agent."""
        b = self.barge_in_after_ms
        if b is None or isinstance(b, int):
            return b
        return b[index] if index < len(b) else None


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """One mark echoed to the server: at ``at_ms`` with ``played_bytes_total`` played.

    ``on_clear``: echoed because of a ``clear`` (its audio was not necessarily heard).
    """

    name: str
    at_ms: float
    played_bytes_total: int
    on_clear: bool


@dataclass(slots=True)
class UtteranceRecord:
    """One caller utterance as sent: start/end (ms) and bytes (8 per ms, padded to 160-byte frames).

    ``end_ms`` is when its last frame had been sent; ``first_agent_media_ms`` when
    the first agent ``media`` message arrived after that (None if none did before
    the next utterance ended or the call did).
    """

    index: int
    start_ms: float
    end_ms: float | None = None
    frames: int = 0
    first_agent_media_ms: float | None = None

    @property
    def latency_ms(self) -> float | None:
        """``first_agent_media_ms - end_ms``, or None."""
        if self.end_ms is None or self.first_agent_media_ms is None:
            return None
        return self.first_agent_media_ms - self.end_ms


@dataclass
class SimulatedCallResult:
    """Everything observed on one simulated call (ms on the call timeline; audio 8 kHz μ-law).

    ``agent_audio``: what the caller heard, placed on the call timeline from t=0
    with silence where the agent was silent, through the end of the call (save
    with :func:`app.audio.write_wav_from_ulaw`). ``agent_audio_bytes_received``:
    decoded bytes of every outbound ``media`` payload; ``played_bytes_total``: the
    part actually played (the rest was cleared or still queued at the end).
    ``played_spans``: what was heard item by item, on the call timeline
    (:meth:`~app.sim.playback.Playback.played_spans`); ``clears`` keeps, for each
    ``clear``, the ms of every item played when it arrived (:meth:`played_ms` asks the
    same of any moment).
    ``turn_latencies_ms``: one per utterance sent, see :class:`UtteranceRecord`.
    ``duration_ms``: from ``start`` to the end of the media stream (0 if none).
    """

    call_sid: str
    stream_sid: str
    from_number: str = ""
    to_number: str = ""
    twiml: str = ""
    http_status: int | None = None
    stream_url: str | None = None
    stream_parameters: dict[str, str] = field(default_factory=dict)
    agent_audio: bytes = b""
    agent_audio_bytes_received: int = 0
    played_bytes_total: int = 0
    marks_sent_back: list[str] = field(default_factory=list)
    mark_echoes: list[MarkEcho] = field(default_factory=list)
    clears: list[ClearRecord] = field(default_factory=list)
    played_spans: list[PlayedSpan] = field(default_factory=list)
    utterances: list[UtteranceRecord] = field(default_factory=list)
    turn_latencies_ms: list[float | None] = field(default_factory=list)
    ended_by: EndReason = "rejected"
    transferred_to: str | None = None
    redirect_url: str | None = None
    ws_close_code: int | None = None
    ws_close_reason: str | None = None
    frames_sent: int = 0
    dtmf_sent: list[str] = field(default_factory=list)
    #: Worst lateness of a frame behind its deadline (wall ms); shows a starved loop.
    max_send_lag_ms: float = 0.0
    status_callback_http_status: int | None = None
    errors: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def token(self) -> str | None:
        """The ``token`` custom parameter sent in ``start`` (None if none)."""
        return self.stream_parameters.get("token")

    def played_ms(self, item: str | None, until_ms: float | None = None) -> float:
        """Ms of ``item``'s audio the caller heard, in all or up to ``until_ms`` (call
        timeline); ``item`` as marks name it (:func:`~app.sim.playback.mark_item`)."""
        return played_ms(self.played_spans, item, until_ms)


@dataclass
class LiveCall:
    """A call in the simulator's registry (what the fake REST API sees and acts on)."""

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    direction: str = "inbound"
    status: str = "ringing"  # Twilio CallStatus
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    end_time: datetime | None = None
    end_reason: EndReason | None = None
    transferred_to: str | None = None
    redirect_url: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once an end was requested or happened (first reason wins)."""
    answered_by: str | None = None
    """AMD verdict of an outbound call (``human``, ``machine_end_beep``, …)."""
    said: list[str] = field(default_factory=list)
    """``<Say>`` texts of TwiML the call was updated with (a voicemail message)."""
    said_at: float | None = None
    """``loop.time()`` when the first ``<Say>`` update arrived."""

    @property
    def duration_s(self) -> int | None:
        """Whole seconds from answer to end (Twilio's ``duration``), once ended."""
        if self.start_time is None or self.end_time is None:
            return None
        return int((self.end_time - self.start_time).total_seconds())

    @property
    def is_live(self) -> bool:
        """True until an end has been requested or happened."""
        return not self.ended.is_set()

    def request_end(
        self,
        reason: EndReason,
        *,
        transferred_to: str | None = None,
        redirect_url: str | None = None,
    ) -> bool:
        """Ask the call to end (the call's own tasks send ``stop`` and close the socket).

        Returns False if the call was already ending (the first reason wins).
        """
        if self.ended.is_set():
            return False
        self.end_reason = reason
        self.transferred_to = transferred_to
        self.redirect_url = redirect_url
        self.ended.set()
        return True


class CarrierSimulator:
    """Plays Twilio toward a Switchboard server (protocols.md §2).

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
        self.base_url = base_url.rstrip("/")
        self.public_base_url = public_base_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.stream_url_override = stream_url_override
        self._validator = RequestValidator(auth_token)
        self.live_calls: dict[str, LiveCall] = {}
        """Calls in progress by CallSid (the fake REST API acts on these)."""
        self.finished_calls: OrderedDict[str, LiveCall] = OrderedDict()
        """The last ``MAX_FINISHED_CALLS`` ended calls by CallSid."""
        self.outbound: OutboundDesk | None = None
        """Outbound calls placed through the REST fake (``app.sim.outbound``)."""

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
        return str(self._validator.compute_signature(url, params))

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
            run = _CallRun(self, call, script)
            return await run.run()
        finally:
            call.end_time = call.end_time or datetime.now(UTC)
            call.status = "completed"
            if call.end_reason is None:
                call.end_reason = "rejected"
            call.ended.set()
            self.finish_call(call)


# ---------------------------------------------------------------------------------------
def _country(number: str) -> str:
    return "US" if number.startswith("+1") else ""


def _twiml_stream(twiml: str) -> tuple[str | None, dict[str, str], dict[str, str], str | None]:
    """(stream url, parameters, stream attributes, dial number) from a TwiML document."""
    root = ET.fromstring(twiml)
    if root.tag != "Response":
        raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
    stream = root.find("./Connect/Stream")
    dial = root.find("./Dial")
    dial_to = _dial_target(dial) if dial is not None else None
    if stream is None:
        return None, {}, {}, dial_to
    params: dict[str, str] = {}
    for p in stream.findall("./Parameter"):
        if p.get("name"):
            params[p.get("name", "")] = p.get("value", "")
    return stream.get("url"), params, dict(stream.attrib), dial_to


def _dial_target(dial: ET.Element) -> str:
    """The number (or client/SIP target) a ``<Dial>`` element calls."""
    text = (dial.text or "").strip()
    if text:
        return text
    for child in dial:
        if (child.text or "").strip():
            return (child.text or "").strip()
    return ""


def parse_dial(twiml: str) -> str | None:
    """The ``<Dial>`` target of a TwiML document, or None if it has no ``<Dial>``."""
    root = ET.fromstring(twiml)
    dial = root.find("./Dial")
    return None if dial is None else _dial_target(dial)


def parse_say(twiml: str) -> list[str]:
    """The texts of a TwiML document's top-level ``<Say>`` verbs, in order."""
    root = ET.fromstring(twiml)
    return [(say.text or "").strip() for say in root.findall("./Say")]


def _frames(ulaw: bytes) -> list[bytes]:
    """Cut μ-law into 160-byte (20 ms) frames, the last padded with silence."""
    out = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        out[-1] = out[-1] + ULAW_SILENCE * (FRAME_BYTES - len(out[-1]))
    return out


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


class _CallRun:
    """State and tasks of one simulated call."""

    def __init__(self, sim: CarrierSimulator, call: LiveCall, script: CallScript) -> None:
        if script.frame_interval_ms <= 0:
            raise ValueError("frame_interval_ms must be > 0")
        self.sim = sim
        self.call = call
        self.script = script
        self.result = SimulatedCallResult(
            call_sid=call.sid,
            stream_sid=new_stream_sid(),
            from_number=script.from_number,
            to_number=script.to_number,
        )
        self.playback = Playback()
        self.speed = FRAME_MS / script.frame_interval_ms
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.ws: ClientConnection | None = None
        self._http: httpx.AsyncClient | None = None
        self.send_lock = asyncio.Lock()
        self.closing = False
        self.seq = 0
        self.chunk = 0
        self.echo_queue: deque[MarkEcho] = deque()
        self.utterance_frames = [_frames(u) for u in script.caller_audio]
        self.next_utterance = 0
        self.current: list[bytes] | None = None  # frames left of the utterance being sent
        self.current_record: UtteranceRecord | None = None
        self.wait_since = 0.0  # call ms since which the caller waits for the agent
        self.agent_spoke_at: float | None = None  # first agent audio since wait_since
        self.dtmf = sorted(script.dtmf, key=lambda d: d[0])
        self.raw = sorted(script.extra_raw_messages, key=lambda r: r[0])
        self.stream_status_callback: str | None = None
        self.end_ms: float | None = None

    # ------------------------------------------------------------------ utils
    def now_ms(self) -> float:
        """Current time on the call timeline (ms since ``start`` was sent)."""
        return (self.loop.time() - self.t0) * 1000.0 * self.speed

    def error(self, msg: str) -> None:
        log.debug("call %s: %s", self.call.sid, msg)
        if len(self.result.errors) < MAX_ERRORS:
            self.result.errors.append(msg)

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    # ------------------------------------------------------------------- flow
    async def run(self) -> SimulatedCallResult:
        r = self.result
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, trust_env=False) as http:
            self._http = http
            stream_url = await self._webhook()
            if stream_url is not None:
                self.call.status = "in-progress"
                self.call.start_time = datetime.now(UTC)
                await self._media_stream(stream_url)
            self.call.end_time = datetime.now(UTC)
            r.ended_by = self.call.end_reason or "rejected"
            r.transferred_to = r.transferred_to or self.call.transferred_to
            r.redirect_url = self.call.redirect_url
            if r.ended_by == "redirect" and r.redirect_url:
                await self._follow_redirect(r.redirect_url)
            if r.http_status is not None and 200 <= r.http_status < 300:
                await self._status_callback()
        r.turn_latencies_ms = [u.latency_ms for u in r.utterances]
        return r

    def _call_params(self, status: str) -> dict[str, str]:
        c = self.call
        return {
            "AccountSid": c.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": c.sid,
            "CallStatus": status,
            "Called": c.to_number,
            "CalledCountry": _country(c.to_number),
            "Caller": c.from_number,
            "CallerCountry": _country(c.from_number),
            "Direction": c.direction,
            "From": c.from_number,
            "FromCountry": _country(c.from_number),
            "To": c.to_number,
            "ToCountry": _country(c.to_number),
        }

    async def _post_signed(self, path_or_url: str, params: dict[str, str]) -> httpx.Response:
        """POST form ``params`` signed as Twilio does; a path is relative to the server."""
        if path_or_url.startswith(("http://", "https://")):
            target = signed = path_or_url
        else:
            target = self.sim.base_url + path_or_url
            signed = self.sim.public_base_url + path_or_url
        headers = {
            "X-Twilio-Signature": self.sim.sign(signed, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        assert self._http is not None
        return await self._http.post(target, data=params, headers=headers)

    async def _webhook(self) -> str | None:
        """POST the voice webhook; return the stream URL, or None if the call ends here."""
        r = self.result
        try:
            resp = await self._post_signed("/twilio/voice", self._call_params("ringing"))
        except httpx.HTTPError as exc:
            self.error(f"voice webhook failed: {exc!r}")
            self.call.request_end("rejected")
            return None
        r.http_status = resp.status_code
        r.twiml = resp.text
        if not 200 <= resp.status_code < 300:
            self.error(f"voice webhook answered HTTP {resp.status_code}")
            self.call.request_end("rejected")
            return None
        try:
            url, params, attrs, dial_to = _twiml_stream(resp.text)
        except (ET.ParseError, ValueError) as exc:
            self.error(f"voice webhook TwiML unparseable: {exc}")
            self.call.request_end("rejected")
            return None
        if url is None:
            if dial_to is not None:
                self.call.request_end("transfer", transferred_to=dial_to)
            else:
                self.error("TwiML has no <Connect><Stream>")
                self.call.request_end("rejected")
            return None
        r.stream_url = url
        s = self.script
        if s.override_token is not None:
            params["token"] = s.override_token
        elif s.reuse_token_of is not None:
            params["token"] = s.reuse_token_of.stream_parameters.get("token", "")
        r.stream_parameters = params
        self.stream_status_callback = attrs.get("statusCallback")
        return url

    async def _media_stream(self, url: str) -> None:
        r = self.result
        headers = {"X-Twilio-Signature": self.sim.sign(url, {})}
        try:
            ws = await connect(
                self.sim.stream_url_override or url,
                additional_headers=headers,
                max_size=MAX_WS_MESSAGE_BYTES,
                open_timeout=WS_OPEN_TIMEOUT_S,
                close_timeout=WS_CLOSE_TIMEOUT_S,
                user_agent_header="Twilio.TmeWs/1.0",
            )
        except InvalidStatus as exc:
            self.error(f"media WebSocket handshake refused: HTTP {exc.response.status_code}")
            self.call.request_end("rejected")
            return
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self.error(f"media WebSocket connect failed: {exc!r}")
            self.call.request_end("rejected")
            return
        self.ws = ws
        try:
            try:
                await ws.send(
                    _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
                )
                self.t0 = self.loop.time()
                await ws.send(_dumps(self._start_message()))
            except ConnectionClosed:
                self.call.request_end("server_closed")
                return
            await self._stream_status("stream-started")
            await self._run_tasks()
        finally:
            if ws.state is not State.CLOSED:
                await ws.close()
            end = self.end_ms if self.end_ms is not None else self.now_ms()
            self.playback.advance(end)  # what was still playing until the end was heard
            r.duration_ms = end
            r.agent_audio = self.playback.recording(until_ms=end)
            r.played_bytes_total = self.playback.played_bytes_total
            r.clears = list(self.playback.clears)
            r.played_spans = self.playback.played_spans()
            r.ws_close_code = ws.close_code
            r.ws_close_reason = ws.close_reason
            await self._stream_status("stream-stopped")

    async def _run_tasks(self) -> None:
        """Sender, receiver and end supervisor in one task group, under a wall-clock cap."""
        wall_cap = self.script.max_duration_s / self.speed + 10.0
        try:
            async with asyncio.timeout(wall_cap), asyncio.TaskGroup() as tg:
                tg.create_task(self._sender(), name=f"sim-send-{self.call.sid}")
                tg.create_task(self._receiver(), name=f"sim-recv-{self.call.sid}")
                tg.create_task(self._supervisor(), name=f"sim-end-{self.call.sid}")
        except* TimeoutError:
            self.error("call tasks did not finish in time")
            self.call.request_end("timeout")
        except* Exception as eg:
            for exc in eg.exceptions:
                self.error(f"simulator task failed: {exc!r}")
            self.call.request_end("server_closed")

    def _start_message(self) -> dict[str, Any]:
        r = self.result
        return {
            "event": "start",
            "sequenceNumber": self.next_seq(),
            "start": {
                "accountSid": self.call.account_sid,
                "streamSid": r.stream_sid,
                "callSid": self.call.sid,
                "tracks": ["inbound"],
                "customParameters": dict(r.stream_parameters),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": r.stream_sid,
        }

    # ----------------------------------------------------------------- tasks
    async def _supervisor(self) -> None:
        """Wait for the end of the call; unless the server closed, send ``stop`` and close."""
        await self.call.ended.wait()
        if self.end_ms is None:
            self.end_ms = self.now_ms()
        ws = self.ws
        assert ws is not None
        async with self.send_lock:
            self.closing = True
            if self.call.end_reason != "server_closed" and ws.state is State.OPEN:
                stop = {
                    "event": "stop",
                    "sequenceNumber": self.next_seq(),
                    "streamSid": self.result.stream_sid,
                    "stop": {"accountSid": self.call.account_sid, "callSid": self.call.sid},
                }
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(_dumps(stop))
        await ws.close()

    async def _receiver(self) -> None:
        ws = self.ws
        assert ws is not None
        try:
            async for raw in ws:
                await self._on_message(raw)
        except ConnectionClosed:
            pass
        if self.end_ms is None:
            self.end_ms = self.now_ms()
        self.call.request_end("server_closed")

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.error(f"unparseable message from server: {raw[:80]!r}")
            return
        if msg.get("streamSid") != self.result.stream_sid:
            self.error(f"{event} message with streamSid {msg.get('streamSid')!r}")
        now = self.now_ms()
        self._pump(now)
        try:
            if event == "media":
                payload = base64.b64decode(msg["media"]["payload"], validate=True)
                self.result.agent_audio_bytes_received += len(payload)
                self.playback.push_media(payload, now)
                self._note_agent_media(now)
            elif event == "mark":
                self.playback.push_mark(str(msg["mark"]["name"]), now)
                self._pump(now)
            elif event == "clear":
                played = self.playback.played_bytes_total
                for name in self.playback.clear(now):
                    self.echo_queue.append(MarkEcho(name, now, played, on_clear=True))
            else:
                self.error(f"unexpected event from server: {event!r}")
        except (KeyError, TypeError, binascii.Error) as exc:
            self.error(f"malformed {event} message from server: {exc!r}")
        except PlaybackOverflow as exc:
            self.error(f"dropped server {event}: {exc}")
        await self._flush_echoes()

    def _note_agent_media(self, now: float) -> None:
        utts = self.result.utterances
        if utts:
            last = utts[-1]
            if last.end_ms is not None and last.first_agent_media_ms is None:
                last.first_agent_media_ms = now

    def _pump(self, now: float) -> None:
        """Advance playback to ``now`` and queue echoes of the marks it reached."""
        step = self.playback.advance(now)
        played = self.playback.played_bytes_total
        for name in step.marks:
            self.echo_queue.append(MarkEcho(name, now, played, on_clear=False))

    async def _flush_echoes(self) -> None:
        if not self.echo_queue:
            return
        async with self.send_lock:
            await self._send_echoes_locked()

    async def _send_echoes_locked(self) -> None:
        ws = self.ws
        assert ws is not None
        while self.echo_queue and not self.closing:
            echo = self.echo_queue.popleft()
            await ws.send(
                _dumps(
                    {
                        "event": "mark",
                        "sequenceNumber": self.next_seq(),
                        "streamSid": self.result.stream_sid,
                        "mark": {"name": echo.name},
                    }
                )
            )
            self.result.marks_sent_back.append(echo.name)
            self.result.mark_echoes.append(echo)

    async def _sender(self) -> None:
        """Tick every frame interval on absolute deadlines: playback, echoes, DTMF, caller audio."""
        interval_s = self.script.frame_interval_ms / 1000.0
        max_ms = self.script.max_duration_s * 1000.0
        tick = 0
        try:
            while not self.call.ended.is_set():
                deadline = self.t0 + tick * interval_s
                delay = deadline - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lag_ms = -delay * 1000.0
                    self.result.max_send_lag_ms = max(self.result.max_send_lag_ms, lag_ms)
                if self.call.ended.is_set():
                    break
                now = self.now_ms()
                if now >= max_ms:
                    self.end_ms = max_ms
                    self.call.request_end("timeout")
                    break
                await self._tick(now, timestamp_ms=tick * FRAME_MS)
                tick += 1
        except ConnectionClosed:
            self.call.request_end("server_closed")

    async def _tick(self, now: float, timestamp_ms: float) -> None:
        self._pump(now)
        frames = self._caller_frames(now)
        async with self.send_lock:
            if self.closing:
                return
            await self._send_echoes_locked()
            await self._send_due_extras(now)
            for i, frame in enumerate(frames):
                await self._send_media(frame, timestamp_ms + i * FRAME_MS)
            if self.current is not None and not self.current and self.current_record:
                self._finish_utterance(self.now_ms())

    async def _send_due_extras(self, now: float) -> None:
        ws = self.ws
        assert ws is not None
        while self.dtmf and self.dtmf[0][0] <= now:
            _, digit = self.dtmf.pop(0)
            msg = {
                "event": "dtmf",
                "streamSid": self.result.stream_sid,
                "sequenceNumber": self.next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
            await ws.send(_dumps(msg))
            self.result.dtmf_sent.append(digit)
        while self.raw and self.raw[0][0] <= now:
            _, raw = self.raw.pop(0)
            await ws.send(raw)

    async def _send_media(self, frame: bytes, timestamp_ms: float) -> None:
        ws = self.ws
        assert ws is not None
        self.chunk += 1
        msg = {
            "event": "media",
            "sequenceNumber": self.next_seq(),
            "media": {
                "track": "inbound",
                "chunk": str(self.chunk),
                "timestamp": str(int(timestamp_ms)),
                "payload": base64.b64encode(frame).decode("ascii"),
            },
            "streamSid": self.result.stream_sid,
        }
        await ws.send(_dumps(msg))
        self.result.frames_sent += 1

    # ------------------------------------------------------------ turn taking
    def _caller_frames(self, now: float) -> list[bytes]:
        """The frames to send at this tick (one with real-time pacing)."""
        pace = self.script.realtime_pace
        if self.current is None and self.next_utterance < len(self.utterance_frames):
            if self._may_start(now):
                self.current = list(self.utterance_frames[self.next_utterance])
                self.current_record = UtteranceRecord(index=self.next_utterance, start_ms=now)
                self.result.utterances.append(self.current_record)
                self.next_utterance += 1
        elif self.current is None and self._may_hang_up(now):
            self.end_ms = now
            self.call.request_end("caller_hangup")
            return []
        if self.current is not None:
            assert self.current_record is not None
            if pace:
                frames = [self.current.pop(0)] if self.current else []
            else:
                frames, self.current = self.current, []
            self.current_record.frames += len(frames)
            return frames
        return [ULAW_SILENCE * FRAME_BYTES] if pace else []

    def _finish_utterance(self, now: float) -> None:
        assert self.current_record is not None
        self.current_record.end_ms = now
        self.current = None
        self.current_record = None
        self.wait_since = now
        self.agent_spoke_at = None

    def _agent_state(self, now: float) -> tuple[bool, float | None]:
        """(agent has spoken since the caller started waiting, ms of silence since)."""
        pb = self.playback
        if pb.is_playing:
            if self.agent_spoke_at is None:
                self.agent_spoke_at = max(pb.burst_start_ms or now, self.wait_since)
            return True, None
        end = pb.last_audio_end_ms
        if end is not None and end > self.wait_since:
            if self.agent_spoke_at is None:
                self.agent_spoke_at = max(pb.burst_start_ms or end, self.wait_since)
            return True, now - end
        return False, None

    def _may_start(self, now: float) -> bool:
        spoke, silent_for = self._agent_state(now)
        if not spoke:
            return now - self.wait_since >= self.script.first_wait_ms
        if silent_for is not None:
            return silent_for >= self.script.gap_ms
        barge = self.script.barge_in_for(self.next_utterance)
        return (
            barge is not None
            and self.agent_spoke_at is not None
            and now - self.agent_spoke_at >= barge
        )

    def _may_hang_up(self, now: float) -> bool:
        after = self.script.hangup_after_ms
        if after is None or self.next_utterance < len(self.utterance_frames):
            return False
        spoke, silent_for = self._agent_state(now)
        if not spoke:
            return now - self.wait_since >= max(after, self.script.first_wait_ms)
        return silent_for is not None and silent_for >= after

    # ------------------------------------------------------------- callbacks
    async def _stream_status(self, event: str) -> None:
        """POST a ``<Stream statusCallback>`` event (``stream-started`` / ``stream-stopped``)."""
        url = self.stream_status_callback
        if not url:
            return
        params = {
            "AccountSid": self.call.account_sid,
            "CallSid": self.call.sid,
            "StreamSid": self.result.stream_sid,
            "StreamEvent": event,
            "Timestamp": datetime.now(UTC).isoformat(),
        }
        if not url.startswith(("http://", "https://")):
            url = "/" + url.lstrip("/")
        try:
            await self._post_signed(url, params)
        except httpx.HTTPError as exc:
            self.error(f"stream status callback failed: {exc!r}")

    async def _status_callback(self) -> None:
        """POST the final call-status callback to ``{base_url}/twilio/status``."""
        c = self.call
        duration_s = c.duration_s or 0
        params = self._call_params("completed")
        params.update(
            {
                "CallDuration": str(duration_s),
                "Duration": str(max(1, math.ceil(duration_s / 60))) if duration_s else "0",
                "Timestamp": format_datetime(c.end_time or datetime.now(UTC)),
                "CallbackSource": "call-progress-events",
                "SequenceNumber": "0",
            }
        )
        try:
            resp = await self._post_signed("/twilio/status", params)
        except httpx.HTTPError as exc:
            self.error(f"status callback failed: {exc!r}")
            return
        self.result.status_callback_http_status = resp.status_code
        if not 200 <= resp.status_code < 300:
            self.error(f"status callback answered HTTP {resp.status_code}")

    async def _follow_redirect(self, url: str) -> None:
        """Fetch the TwiML a REST ``Url=`` update points at; a ``<Dial>`` there is a transfer."""
        try:
            resp = await self._post_signed(url, self._call_params("in-progress"))
            dial = parse_dial(resp.text) if 200 <= resp.status_code < 300 else None
        except (httpx.HTTPError, ET.ParseError) as exc:
            self.error(f"redirect URL fetch failed: {exc!r}")
            return
        if dial is not None:
            self.result.transferred_to = dial
