"""Outbound calls in the carrier simulator: what Twilio does after ``POST .../Calls.json``
(docs/protocols.md §2 "Outbound calls and live control").

A rule per called number (``Callee``; ``OutboundRules``) decides what the other end
does, call after call: ``person`` (answers; with ``media`` the call's stream runs
through the server like an inbound call, driven by a ``CallScript`` — DTMF, recordings,
hang-up after the agent falls silent; without it a fast mode holds ``hold_ms`` and hangs
up, no stream), ``voicemail`` (answers; plays a greeting and a beep into the stream, then
records until the server updates the call with a ``<Say>`` message or hangs up),
``busy``, ``no-answer`` (rings ``ring_ms`` or the request's ``Timeout``), ``failed``
(the call fails after ``initiated``) and ``rejected`` (the REST request itself is
refused: 400/21211, no call).

Twilio's order is kept: status callbacks ``initiated`` → ``ringing`` → ``in-progress``
(the ``answered`` event) → voice webhook (``Url``) → media stream → ``completed``
(with ``CallDuration`` and ``AnsweredBy``), or ``busy``/``no-answer``/``failed``; each
signed (``X-Twilio-Signature``) over the public URL the server gave and delivered to the
server's real address; only the events named in ``StatusCallbackEvent`` are posted, plus
the final one. With ``MachineDetection`` and ``AsyncAmd=true`` the AMD verdict is posted
to ``AsyncAmdStatusCallback``: ``human`` ``amd_ms`` after a person answered,
``machine_end_beep`` right after the voicemail's beep has been sent — and always before
the final status callback. ``callback_repeats`` > 1 posts every callback that many times
(Twilio retries; the server must be idempotent).

``ring_ms``, ``hold_ms`` and ``amd_ms`` are real milliseconds; media-side times follow the
``CallScript`` call timeline (``frame_interval_ms`` < 20 runs it faster than real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np

from app.audio import SAMPLE_RATE, pcm16_to_ulaw
from switchboard_sim.callbacks import (
    HTTP_TIMEOUT_S,
    amd_params,
    call_params,
    final_status_params,
    status_params,
)
from switchboard_sim.calls import (
    CallScript,
    LiveCall,
    SimulatedCallResult,
    new_call_sid,
    new_stream_sid,
)
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.stream import MediaStream
from switchboard_sim.twiml import Answer, parse_answer

log = logging.getLogger(__name__)

CalleeKind = Literal["person", "voicemail", "busy", "no-answer", "failed", "rejected"]
#: Status callback events Twilio accepts in ``StatusCallbackEvent``.
EVENTS = ("initiated", "ringing", "answered", "completed")
#: Outbound requests kept in ``OutboundDesk.log`` and results in ``OutboundDesk.results``.
MAX_LOG = 10_000
#: Twilio caps ``Timeout`` at 600 s.
MAX_TIMEOUT_S = 600


def machine_greeting(speech_ms: int = 1200, gap_ms: int = 200, beep_ms: int = 400) -> bytes:
    """A voicemail greeting as 8 kHz μ-law: syllable-like noise bursts (``speech_ms``),
    a pause, then a 1 kHz beep (``beep_ms``). Deterministic."""
    rng = np.random.default_rng(4)
    n = SAMPLE_RATE * speech_ms // 1000
    t = np.arange(n) / SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)  # ~4 syllables a second
    voiced = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 540 * t)
    speech = (voiced + 0.3 * rng.standard_normal(n)) * envelope * 6000
    gap = np.zeros(SAMPLE_RATE * gap_ms // 1000)
    tb = np.arange(SAMPLE_RATE * beep_ms // 1000) / SAMPLE_RATE
    beep = np.sin(2 * np.pi * 1000 * tb) * 12000
    pcm = np.concatenate([speech, gap, beep]).astype("<i2").tobytes()
    return pcm16_to_ulaw(pcm)


@dataclass(frozen=True)
class Callee:
    """What the called party does on one call (see the module doc).

    ``ring_ms``: real ms of ringing before answering (``person``/``voicemail``), before
    the busy signal, or before giving up (``no-answer``, capped by ``Timeout``).
    ``script``: the media side of an answered call (``person`` with ``media``, and
    ``voicemail``, whose ``caller_audio`` defaults to ``machine_greeting()``); None uses
    ``default_script()``. ``hold_ms``: a fast-mode person's time on the line.
    ``amd_ms``: real ms after answer until a person's ``human`` verdict.
    ``message_ms_per_word``: how long a left voicemail message plays, per word.
    """

    kind: CalleeKind = "person"
    ring_ms: int = 50
    media: bool = True
    script: CallScript | None = None
    hold_ms: int = 100
    amd_ms: int = 50
    message_ms_per_word: int = 10

    def default_script(self) -> CallScript:
        """The media script used when ``script`` is None: a silent person who hangs up
        once the agent has been quiet 800 ms, or a voicemail that greets and beeps at once
        and then records; both at 4x speed without audio between utterances."""
        if self.kind == "voicemail":
            return CallScript(
                caller_audio=[machine_greeting()],
                first_wait_ms=0,  # a machine greets at once, whatever the agent does
                barge_in_after_ms=0,
                realtime_pace=False,
                frame_interval_ms=5,
                max_duration_s=120,
            )
        return CallScript(
            realtime_pace=False, frame_interval_ms=5, hangup_after_ms=800, max_duration_s=60
        )


class OutboundRules:
    """``Callee`` rules by called number; successive calls to a number take successive
    entries of its list (the last one repeats). Unlisted numbers get ``default``."""

    def __init__(self, default: Callee | None = None) -> None:
        self.default = default or Callee()
        self._rules: dict[str, list[Callee]] = {}
        self._calls: dict[str, int] = {}

    def set(self, number: str, *callees: Callee) -> None:
        """Rule for ``number``: call 1 → ``callees[0]``, call 2 → ``callees[1]``, …"""
        if not callees:
            raise ValueError("give at least one Callee")
        self._rules[number] = list(callees)

    def next_for(self, number: str) -> Callee:
        """The ``Callee`` for the next call to ``number`` (counts the call)."""
        index = self._calls.get(number, 0)
        self._calls[number] = index + 1
        rules = self._rules.get(number)
        if not rules:
            return self.default
        return rules[min(index, len(rules) - 1)]

    def calls_to(self, number: str) -> int:
        """How many calls to ``number`` were requested (including refused ones)."""
        return self._calls.get(number, 0)


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """One ``POST .../Calls.json`` the desk accepted: ``at`` is ``time.monotonic()`` and
    ``wall`` Unix seconds on arrival; ``attempt`` the ``attempt`` query parameter of the
    ``StatusCallback``/``Url`` (what the dialer names its attempts by)."""

    sid: str
    to: str
    from_: str
    attempt: str | None
    at: float
    wall: float
    params: dict[str, str]
    events: tuple[str, ...]


@dataclass
class OutboundResult:
    """What happened on one outbound call. ``callbacks``: ``(kind, status, HTTP status or
    None)`` for every status/AMD callback posted, in order. ``media``: the stream's
    result for calls with media. ``beep_at`` / ``message_at``: ``loop.time()`` of the end
    of the voicemail beep and of the ``<Say>`` update."""

    sid: str
    to: str
    kind: CalleeKind
    final_status: str = ""
    answered_by: str | None = None
    twiml: str = ""
    callbacks: list[tuple[str, str, int | None]] = field(default_factory=list)
    media: SimulatedCallResult | None = None
    voicemail_message: str | None = None
    beep_at: float | None = None
    message_at: float | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def message_after_beep(self) -> bool | None:
        """True when the voicemail message came after the beep (None: no message)."""
        if self.message_at is None:
            return None
        return self.beep_at is not None and self.message_at >= self.beep_at


class OutboundRefused(Exception):
    """The REST request is refused (``rejected`` rule): HTTP ``status`` + Twilio ``code``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _query_param(url: str, name: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


class OutboundDesk:
    """Accepts outbound calls for ``sim`` and plays each out as a background task."""

    def __init__(self, sim: CarrierSimulator) -> None:
        self.sim = sim
        self.rules = OutboundRules()
        self.log: deque[OutboundRecord] = deque(maxlen=MAX_LOG)
        self.results: OrderedDict[str, OutboundResult] = OrderedDict()
        self.callback_repeats = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def active(self) -> int:
        """Outbound calls still playing out."""
        return len(self._tasks)

    def place(self, params: dict[str, str], events: Sequence[str]) -> LiveCall:
        """Start an outbound call from validated REST ``params``. Raises
        ``OutboundRefused`` when the number's rule is ``rejected``."""
        to, from_ = params["To"], params["From"]
        callee = self.rules.next_for(to)
        if callee.kind == "rejected":
            raise OutboundRefused(400, 21211, f"Invalid 'To' Phone Number: {to}")
        call = LiveCall(
            sid=new_call_sid(),
            account_sid=self.sim.account_sid,
            from_number=from_,
            to_number=to,
            direction="outbound-api",
            status="queued",
        )
        self.sim.live_calls[call.sid] = call
        url = params.get("StatusCallback") or params.get("Url") or ""
        self.log.append(
            OutboundRecord(
                sid=call.sid,
                to=to,
                from_=from_,
                attempt=_query_param(url, "attempt"),
                at=time.monotonic(),
                wall=time.time(),
                params=dict(params),
                events=tuple(events),
            )
        )
        run = _OutboundRun(self, call, params, events, callee)
        self.results[call.sid] = run.result
        while len(self.results) > MAX_LOG:
            self.results.popitem(last=False)
        task = asyncio.create_task(run.run(), name=f"sim-outbound-{call.sid}")
        self._tasks.add(task)
        self.idle.clear()
        task.add_done_callback(self._done)
        return call

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self.idle.set()

    async def wait_idle(self, timeout_s: float = 30) -> None:
        """Wait until every outbound call has finished (its final callback posted)."""
        async with asyncio.timeout(timeout_s):
            await self.idle.wait()

    async def cancel_all(self) -> None:
        """Abandon calls still playing (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _OutboundRun:
    """One outbound call from ``initiated`` to its final status callback."""

    def __init__(
        self,
        desk: OutboundDesk,
        call: LiveCall,
        params: dict[str, str],
        events: Sequence[str],
        callee: Callee,
    ) -> None:
        self.desk = desk
        self.sim = desk.sim
        self.call = call
        self.params = params
        self.events = set(events)
        self.callee = callee
        self.status_url = params.get("StatusCallback") or ""
        self.voice_url = params.get("Url") or ""
        self.inline_twiml = params.get("Twiml")
        detection = params.get("MachineDetection", "")
        self.amd = detection in ("Enable", "DetectMessageEnd")
        self.amd_url = params.get("AsyncAmdStatusCallback") or ""
        self.async_amd = params.get("AsyncAmd", "false").lower() == "true" and bool(self.amd_url)
        self.timeout_ms = min(_int(params.get("Timeout"), 60), MAX_TIMEOUT_S) * 1000
        self.time_limit_s = _int(params.get("TimeLimit"), 14_400)
        self.seq = 0
        self.loop = asyncio.get_running_loop()
        self.result = OutboundResult(
            sid=call.sid, to=call.to_number, kind=callee.kind, started_at=self.loop.time()
        )
        self.http: httpx.AsyncClient | None = None
        self._amd_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        final = "failed"
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, trust_env=False) as http:
            self.http = http
            try:
                final = await self._play()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.result.errors.append(f"outbound call failed: {exc!r}")
                log.exception("simulated outbound call %s failed", self.call.sid)
            finally:
                self.call.ended.set()
            if self._amd_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._amd_task
            c = self.call
            c.status = final
            c.end_time = datetime.now(UTC)
            self.result.final_status = final
            self.result.answered_by = c.answered_by
            self.result.ended_at = self.loop.time()
            self.sim.finish_call(c)
            await self._final(final)

    async def _play(self) -> str:
        c, kind = self.call, self.callee.kind
        await self._status("initiated", "initiated")
        if kind == "failed":
            return "failed"
        c.status = "ringing"
        await self._status("ringing", "ringing")
        if kind == "busy":
            return "canceled" if await self._wait(self.callee.ring_ms) else "busy"
        if kind == "no-answer" or self.callee.ring_ms >= self.timeout_ms:
            wait = min(self.callee.ring_ms, self.timeout_ms)
            return "canceled" if await self._wait(wait) else "no-answer"
        if await self._wait(self.callee.ring_ms):
            return "canceled"  # hung up by the API while ringing
        c.status = "in-progress"
        c.start_time = datetime.now(UTC)
        await self._status("in-progress", "answered")
        twiml = await self._twiml()
        self.result.twiml = twiml or ""
        if self.async_amd and kind == "person":
            self._amd_task = asyncio.create_task(self._amd_after(self.callee.amd_ms, "human"))
        stream = None
        if twiml:
            try:
                answer = parse_answer(twiml)
                stream = answer if answer.stream_url else None
            except (ET.ParseError, ValueError) as exc:
                self.result.errors.append(f"TwiML unparseable: {exc}")
        if stream is None:
            c.request_end("server_closed")
            return "completed"
        if kind == "person" and not self.callee.media:
            if not await self._wait(self.callee.hold_ms):
                c.request_end("caller_hangup")
            return "completed"
        script = self.callee.script or self.callee.default_script()
        if kind == "voicemail" and not script.caller_audio:
            script = replace(script, caller_audio=[machine_greeting()])
        script = replace(
            script,
            from_number=c.from_number,
            to_number=c.to_number,
            max_duration_s=min(script.max_duration_s, self.time_limit_s),
        )
        await self._media(stream, script)
        if c.said:
            self.result.voicemail_message = " ".join(c.said)
            self.result.message_at = c.said_at
            words = len(self.result.voicemail_message.split())
            await asyncio.sleep(words * self.callee.message_ms_per_word / 1000)
        return "completed"

    async def _wait(self, ms: float) -> bool:
        """Sleep ``ms`` real ms; True when the call was ended meanwhile (REST update)."""
        try:
            async with asyncio.timeout(ms / 1000):
                await self.call.ended.wait()
            return True
        except TimeoutError:
            return False

    async def _media(self, answer: Answer, script: CallScript) -> None:
        url = answer.stream_url or ""
        result = SimulatedCallResult(
            call_sid=self.call.sid,
            stream_sid=new_stream_sid(),
            from_number=script.from_number,
            to_number=script.to_number,
            twiml=self.result.twiml,
            http_status=200,
            stream_url=url,
            stream_parameters=dict(answer.parameters),
        )
        assert self.http is not None
        stream = MediaStream(
            self.sim.webhooks,
            self.http,
            self.call,
            script,
            result,
            connect_url=self.sim.stream_url_override,
            status_callback=answer.attributes.get("statusCallback"),
        )
        self.result.media = result
        watcher = None
        if self.callee.kind == "voicemail":
            watcher = asyncio.create_task(self._beep_watch(result))
        try:
            await stream.run(url)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        result.ended_by = self.call.end_reason or "server_closed"
        result.turn_latencies_ms = [u.latency_ms for u in result.utterances]

    async def _beep_watch(self, media: SimulatedCallResult) -> None:
        """Once the greeting (ending in the beep) has been sent, post the AMD verdict."""
        while True:
            utts = media.utterances
            if utts and utts[0].end_ms is not None:
                break
            await asyncio.sleep(0.005)
        self.result.beep_at = self.loop.time()
        if self.async_amd:
            self._amd_task = asyncio.create_task(self._amd_after(0, "machine_end_beep"))
            await asyncio.shield(self._amd_task)

    # ------------------------------------------------------------- callbacks
    async def _post(
        self, url: str, params: dict[str, str], kind: str, repeats: int | None = None
    ) -> httpx.Response | None:
        """POST ``params`` signed over ``url`` (a public URL), delivered to the server;
        ``repeats`` times (default: the desk's ``callback_repeats``)."""
        assert self.http is not None
        resp: httpx.Response | None = None
        for _ in range(max(1, self.desk.callback_repeats if repeats is None else repeats)):
            try:
                resp = await self.sim.webhooks.post(self.http, url, params)
            except httpx.HTTPError as exc:
                self.result.errors.append(f"{kind} callback failed: {exc!r}")
                self.result.callbacks.append((kind, params.get("CallStatus", ""), None))
                return None
            self.result.callbacks.append(
                (kind, params.get("CallStatus") or params.get("AnsweredBy", ""), resp.status_code)
            )
            if not 200 <= resp.status_code < 300:
                self.result.errors.append(f"{kind} callback answered HTTP {resp.status_code}")
        return resp

    async def _status(self, status: str, event: str) -> None:
        if not self.status_url or event not in self.events:
            return
        params = status_params(self.call, status, self.seq)
        self.seq += 1
        await self._post(self.status_url, params, "status")

    async def _final(self, status: str) -> None:
        """The final status callback (always sent when there is a ``StatusCallback``)."""
        if not self.status_url:
            return
        answered_by = self.call.answered_by if self.amd else None
        params = final_status_params(self.call, status, self.seq, answered_by=answered_by)
        self.seq += 1
        await self._post(self.status_url, params, "status")

    async def _amd_after(self, delay_ms: int, verdict: str) -> None:
        await asyncio.sleep(delay_ms / 1000)
        self.call.answered_by = verdict
        await self._post(self.amd_url, amd_params(self.call, verdict, delay_ms), "amd")

    async def _twiml(self) -> str | None:
        """The TwiML to run on answer: the inline ``Twiml`` or the ``Url`` webhook's."""
        if self.inline_twiml:
            return self.inline_twiml
        if not self.voice_url:
            return None
        resp = await self._post(
            self.voice_url, call_params(self.call, "in-progress"), "voice", repeats=1
        )
        if resp is None or not 200 <= resp.status_code < 300:
            return None
        return resp.text


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default
