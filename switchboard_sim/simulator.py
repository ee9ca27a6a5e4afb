"""``switchboard simulator``: the carrier simulator as a long-running service.

It hosts the fake Twilio REST API (:mod:`switchboard_sim.rest`) on loopback, so that the
dialers (``switchboard serve`` with its dialer, ``switchboard dialer``) place outbound
calls through it exactly as through ``api.twilio.com``: point
``SWITCHBOARD_TWILIO_API_BASE_URL`` at it (in dev with the dev account SID the default is
``http://127.0.0.1:{SWITCHBOARD_SIMULATOR_PORT}``). Each call plays out by the rule for its
number (:mod:`switchboard_sim.outbound`): a person answers and the call's media stream runs
through the real server and engine, a voicemail greets and beeps, or the line is busy,
never answers, fails, or the request is refused. Status and AMD callbacks go to the
server signed with the account's auth token (``X-Twilio-Signature`` over the public
URL the server gave), and the server's hang-ups and transfers come back through the same
REST API. Every call is logged (numbers masked).

Rules come from a YAML file (``--rules``, ``examples/simulator.yaml``)::

    default: person                  # numbers not listed below
    numbers:
      "+15555550123": {kind: person, keypad: "1"}   # answers, presses 1 then #
      "+15555550188": [busy, person]               # call 1 busy, call 2 onwards answers
      "+15555550142": voicemail

An entry is a kind (``person``, ``voicemail``, ``busy``, ``no-answer``, ``failed``,
``rejected``) or a mapping with the fields of :class:`CalleeRule`; a list gives
successive calls to the number their entries in turn (the last one repeats).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.audio import read_wav_as_ulaw
from app.phone import mask, normalize
from app.settings import Settings
from switchboard_sim.assets import RECORDINGS_DIR
from switchboard_sim.calls import CallScript, LiveCall
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.outbound import (
    Callee,
    CalleeKind,
    OutboundDesk,
    OutboundRefused,
    OutboundRules,
)
from switchboard_sim.rest import TwilioRestFake

log = logging.getLogger("switchboard_sim.simulator")

#: Task names of outbound calls in ``OutboundDesk`` (``sim-outbound-{CallSid}``).
_TASK_PREFIX = "sim-outbound-"


class SimulatorError(Exception):
    """The simulator cannot start: a bad rules file, or its address is taken."""


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_rest_address(settings: Settings) -> tuple[str, int] | None:
    """``(host, port)`` of the Twilio REST base URL the dialers use
    (``Settings.twilio_rest_base_url``) when it is a plain-http loopback URL, the
    simulator's case; None for Twilio itself or any other host."""
    url = settings.twilio_rest_base_url
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "http" or not is_loopback(parts.hostname):
        return None
    assert parts.hostname is not None
    return parts.hostname, parts.port or 80


def default_address(settings: Settings) -> tuple[str, int]:
    """Where ``switchboard simulator`` listens by default: the loopback Twilio REST base
    URL the dialers use, else ``127.0.0.1:{simulator_port}``."""
    return loopback_rest_address(settings) or ("127.0.0.1", settings.simulator_port)


class CalleeRule(BaseModel):
    """What the called party does on one call (times in real ms).

    ``ring_ms``: ringing before answering (``person``, ``voicemail``), before the busy
    signal, or before giving up (``no-answer``, capped by the request's ``Timeout``).
    A ``person`` with ``media`` (the default) answers and the call's media stream runs
    through the server in real time: it listens, presses ``keypad`` (then ``#``)
    ``keypad_at_ms`` after the stream started, says the ``say`` recordings in turn
    (WAV paths, relative to the rules file, or bundled recording names such as
    ``goodbye``) whenever the agent has finished speaking, and hangs up once the agent
    has been quiet ``hangup_after_ms`` after the last of them, or after
    ``max_duration_s``. ``media: false``: the person holds ``hold_ms`` and hangs up,
    without a media stream. ``amd_ms``: when the AMD verdict ``human`` is posted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: CalleeKind = "person"
    ring_ms: int = Field(1000, ge=0, le=600_000)
    media: bool = True
    keypad: Annotated[str, Field(pattern=r"^[0-9*#]{1,32}$")] | None = None
    keypad_at_ms: int = Field(2000, ge=0, le=600_000)
    say: list[str] = Field(default_factory=list, max_length=20)
    hangup_after_ms: int = Field(2000, ge=0, le=600_000)
    hold_ms: int = Field(3000, ge=0, le=600_000)
    amd_ms: int = Field(1000, ge=0, le=60_000)
    max_duration_s: int = Field(300, ge=1, le=14_400)


Entry = CalleeKind | CalleeRule


class RulesFile(BaseModel):
    """A rules file (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    default: Entry = "person"
    numbers: dict[str, Entry | list[Entry]] = Field(default_factory=dict)

    @field_validator("numbers")
    @classmethod
    def _e164_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for number, entry in value.items():
            out[normalize(str(number))] = entry  # ValueError names the bad number
            if isinstance(entry, list) and not entry:
                raise ValueError(f"{number}: give at least one entry")
        return out


def _as_rule(entry: Entry) -> CalleeRule:
    return entry if isinstance(entry, CalleeRule) else CalleeRule(kind=entry)


def _recording(name: str, base: Path) -> Path:
    """A ``say`` entry as a file: a path relative to ``base``, or a bundled recording."""
    path = (base / name).expanduser()
    if path.is_file():
        return path
    bundled = RECORDINGS_DIR / (name if name.endswith(".wav") else f"{name}.wav")
    if bundled.parent == RECORDINGS_DIR and bundled.is_file():
        return bundled
    raise SimulatorError(f"say: no recording {name!r} (neither {path} nor a bundled one)")


def to_callee(rule: CalleeRule, base: Path | None = None) -> Callee:
    """The :class:`~switchboard_sim.outbound.Callee` for ``rule`` (``say`` paths relative to
    ``base``, default the working directory). Raises ``SimulatorError`` for a recording
    that cannot be read."""
    base = base or Path.cwd()
    script = None
    if rule.kind == "person" and rule.media:
        audio = []
        for name in rule.say:
            path = _recording(name, base)
            try:
                audio.append(read_wav_as_ulaw(path))
            except (OSError, ValueError, EOFError) as exc:
                raise SimulatorError(f"say: cannot read {path}: {exc}") from None
        digits = (rule.keypad or "").rstrip("#")
        dtmf = [(rule.keypad_at_ms + 100 * i, d) for i, d in enumerate(digits)]
        if rule.keypad:
            dtmf.append((rule.keypad_at_ms + 100 * len(digits), "#"))
        script = CallScript(
            caller_audio=audio,
            dtmf=dtmf,
            hangup_after_ms=rule.hangup_after_ms,
            # Waits this long for the agent's first words (and its keypad presses)
            # before speaking or hanging up.
            first_wait_ms=max(10_000, rule.keypad_at_ms + 100 * len(dtmf) + 1000),
            max_duration_s=rule.max_duration_s,
        )
    return Callee(
        rule.kind,
        ring_ms=rule.ring_ms,
        media=rule.media,
        script=script,
        hold_ms=rule.hold_ms,
        amd_ms=rule.amd_ms,
    )


def default_rules() -> OutboundRules:
    """Every number: a ``person`` who answers after 1 s, listens and hangs up once the
    agent has been quiet for 2 s."""
    return OutboundRules(to_callee(CalleeRule()))


def load_rules(path: Path) -> OutboundRules:
    """Rules from a YAML (or JSON) file. Raises ``SimulatorError`` with what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SimulatorError(f"cannot read rules {path}: {exc}") from None
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise SimulatorError(f"invalid rules {path}:\n{exc}") from None
    base = path.resolve().parent
    try:
        rules = OutboundRules(to_callee(_as_rule(parsed.default), base))
        for number, entry in parsed.numbers.items():
            entries = entry if isinstance(entry, list) else [entry]
            try:
                rules.set(number, *(to_callee(_as_rule(e), base) for e in entries))
            except SimulatorError as exc:
                raise SimulatorError(f"{number}: {exc}") from None
    except SimulatorError as exc:
        raise SimulatorError(f"invalid rules {path}: {exc}") from None
    return rules


def describe(rules: OutboundRules) -> str:
    """One line: the default kind and how many numbers have their own rule."""
    listed = len(rules._rules)
    return f"default {rules.default.kind}" + (f", {listed} number(s) with rules" if listed else "")


class LoggingDesk(OutboundDesk):
    """An ``OutboundDesk`` that logs every call it accepts, refuses and finishes."""

    def place(self, params: dict[str, str], events: Any) -> LiveCall:
        to, from_ = params.get("To", ""), params.get("From", "")
        try:
            call = super().place(params, events)
        except OutboundRefused as exc:
            log.info("refused a call to %s: HTTP %d code %d", mask(to), exc.status, exc.code)
            raise
        result = self.results.get(call.sid)
        kind = result.kind if result else "?"
        log.info("call %s to %s from %s: %s", call.sid, mask(to), mask(from_), kind)
        return call

    def _done(self, task: asyncio.Task[None]) -> None:
        super()._done(task)
        sid = task.get_name().removeprefix(_TASK_PREFIX)
        result = self.results.get(sid)
        if result is None:
            return
        took = (result.ended_at or result.started_at) - result.started_at
        parts = [result.final_status or "abandoned"]
        if result.answered_by:
            parts.append(f"answered by {result.answered_by}")
        if result.media is not None:
            parts.append(f"stream ended by {result.media.ended_by}")
        if result.voicemail_message:
            parts.append(f"voicemail message of {len(result.voicemail_message.split())} words")
        log.info("call %s to %s: %s after %.1f s", sid, mask(result.to), ", ".join(parts), took)
        errors = result.errors + (result.media.errors if result.media else [])
        for err in errors[:5]:
            log.warning("call %s: %s", sid, err)


class Simulator:
    """The fake Twilio REST API on ``host:port`` (``port=0``: any free port) with outbound
    calls to the server at ``server_url`` (signed over ``public_base_url``)."""

    def __init__(
        self,
        *,
        server_url: str,
        public_base_url: str,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        rules: OutboundRules | None = None,
    ) -> None:
        self.sim = CarrierSimulator(server_url, public_base_url, account_sid, auth_token)
        self.desk = LoggingDesk(self.sim)
        if rules is not None:
            self.desk.rules = rules
        self.rest = TwilioRestFake(
            self.sim, account_sid, auth_token, host=host, port=port, outbound=self.desk
        )
        self.started_at: float | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the REST API (after :meth:`start`)."""
        return self.rest.base_url

    async def start(self) -> None:
        """Listen. Raises ``SimulatorError`` when the address is taken or cannot be bound."""
        try:
            await self.rest.start()
        except OSError as exc:
            where = f"{self.rest._server.host}:{self.rest._server.port}"
            if exc.errno == errno.EADDRINUSE:
                raise SimulatorError(
                    f"{where} is already in use (another `switchboard simulator`, or "
                    "`switchboard call`, which hosts its own while it runs?); stop it or "
                    "choose another port (--port, SWITCHBOARD_SIMULATOR_PORT)"
                ) from None
            raise SimulatorError(f"cannot listen on {where}: {exc}") from None
        self.started_at = time.monotonic()

    async def stop(self) -> None:
        """Stop listening; calls still playing out are abandoned."""
        await self.rest.stop()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def totals(self) -> dict[str, int]:
        """Calls accepted, still active, and finished per final status."""
        out: dict[str, int] = {"placed": len(self.desk.log), "active": self.desk.active}
        for r in self.desk.results.values():
            if r.final_status:
                out[r.final_status] = out.get(r.final_status, 0) + 1
        return out


async def run_until(simulator: Simulator, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then log the totals and stop."""
    await simulator.start()
    log.info(
        "fake Twilio REST API listening on %s (account %s…); calls go to the server at %s; "
        "rules: %s",
        simulator.base_url,
        simulator.sim.account_sid[:6],
        simulator.sim.base_url,
        describe(simulator.desk.rules),
    )
    try:
        await stop.wait()
    finally:
        log.info("stopping: %s", simulator.totals())
        await simulator.stop()
