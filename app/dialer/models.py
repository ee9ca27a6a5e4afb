"""Campaign, contact and outcome models (pydantic; what the API takes and Redis keeps).

A campaign (``CampaignSpec``) names an outbound flow, a caller ID, a calling window in the
recipient's local time, start/end instants, a concurrency cap, a calls-per-second limit,
a retry policy per outcome and a voicemail policy. Contacts are E.164 numbers with an
IANA time zone and template variables for the flow (``{{name}}`` placeholders).

Times in the API are ISO 8601 instants with an offset; in Redis they are Unix epoch ms.
Back-off delays are seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.phone import is_e164

#: ISO weekday names used in calling windows, Monday first (``datetime.weekday()`` order).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")

#: A contact variable name: lower-case identifier (used as ``{{name}}`` in the flow).
VARIABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
#: Longest variable value (characters). Variables travel as TwiML ``<Parameter>``s, whose
#: name + value must stay under 500 characters (docs/protocols.md §2).
MAX_VARIABLE_CHARS = 300
#: Most variables per contact.
MAX_VARIABLES = 20


def valid_timezone(name: str) -> bool:
    """True when ``name`` is an IANA zone this system knows (``Europe/London``)."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class CampaignStatus(StrEnum):
    """``draft`` → ``running`` ⇄ ``paused`` → ``completed`` | ``cancelled``."""

    draft = "draft"
    running = "running"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


class Outcome(StrEnum):
    """How an attempt ended (``busy`` … ``opted_out``) or why a contact is done.

    Carrier outcomes: ``busy``, ``no_answer``, ``failed`` (incl. carrier ``canceled`` and
    a dial lost with its dialer), ``voicemail`` (a machine; no message left),
    ``voicemail_left``, ``fax``, ``answered`` (a person, no explicit outcome recorded).
    Explicit outcomes from the agent's tools: ``confirmed``, ``rescheduled``,
    ``cancelled`` (the appointment), ``wrong_person``, ``opted_out``.
    Contact-only outcomes (no call made): ``dnc`` (on the global do-not-call list),
    ``expired`` (the campaign ended first), ``campaign_cancelled``.
    """

    busy = "busy"
    no_answer = "no_answer"
    failed = "failed"
    voicemail = "voicemail"
    voicemail_left = "voicemail_left"
    fax = "fax"
    answered = "answered"
    confirmed = "confirmed"
    rescheduled = "rescheduled"
    cancelled = "cancelled"
    wrong_person = "wrong_person"
    opted_out = "opted_out"
    dnc = "dnc"
    expired = "expired"
    campaign_cancelled = "campaign_cancelled"


#: Outcomes a retry policy can answer with another attempt.
RETRYABLE: frozenset[Outcome] = frozenset(
    {Outcome.busy, Outcome.no_answer, Outcome.failed, Outcome.voicemail}
)
#: Outcomes the ``record_outcome`` tool may record.
RESULT_OUTCOMES: tuple[str, ...] = ("confirmed", "rescheduled", "cancelled", "wrong_person")


class CallingWindow(BaseModel):
    """Hours and weekdays a contact may be called, in the contact's local time.

    ``start`` inclusive, ``end`` exclusive (``end`` > ``start``: no window spans
    midnight). A call is placed only at an instant inside the window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time = time(9, 0)
    end: time = time(20, 0)
    days: list[Weekday] = Field(default_factory=lambda: list(_WORKDAYS), min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are local wall-clock times without an offset")
        if self.end <= self.start:
            raise ValueError("window end must be after its start (same day)")
        if len(set(self.days)) != len(self.days):
            raise ValueError("window days must not repeat")
        return self

    @property
    def weekday_numbers(self) -> frozenset[int]:
        """``datetime.weekday()`` numbers (Monday 0) of ``days``."""
        return frozenset(WEEKDAYS.index(d) for d in self.days)


class RetryRule(BaseModel):
    """Retries after one outcome: up to ``retries`` more attempts; retry *k* (1-based) waits
    ``backoff_s[k-1]`` seconds after the attempt ended (the last value repeats), then the
    next opening of the calling window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int = Field(2, ge=0, le=20)
    backoff_s: list[int] = Field(default_factory=lambda: [1800, 3600, 7200], min_length=1)

    @field_validator("backoff_s")
    @classmethod
    def _non_negative(cls, v: list[int]) -> list[int]:
        if any(s < 0 or s > 30 * 86400 for s in v):
            raise ValueError("back-off delays are 0 to 2592000 seconds")
        return v

    def delay_s(self, retry_number: int) -> int:
        """Seconds before retry ``retry_number`` (1-based)."""
        return self.backoff_s[min(retry_number, len(self.backoff_s)) - 1]


class RetryPolicy(BaseModel):
    """A ``RetryRule`` per retryable outcome plus a cap on attempts per contact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    busy: RetryRule = Field(default_factory=RetryRule)
    no_answer: RetryRule = Field(default_factory=RetryRule)
    failed: RetryRule = Field(default_factory=lambda: RetryRule(retries=1, backoff_s=[600]))
    voicemail: RetryRule = Field(default_factory=lambda: RetryRule(retries=1, backoff_s=[7200]))
    max_attempts: int = Field(5, ge=1, le=50)

    def rule(self, outcome: Outcome) -> RetryRule | None:
        """The rule for ``outcome`` (None: not retryable)."""
        if outcome not in RETRYABLE:
            return None
        rule: RetryRule = getattr(self, outcome.value)
        return rule


class VoicemailAction(StrEnum):
    """What to do when a machine answers (async AMD ``DetectMessageEnd``).

    ``leave_message``: after the beep, speak ``voicemail_message`` and hang up (final);
    ``hang_up``: hang up (final); ``retry``: hang up and retry per ``retry.voicemail``.
    """

    leave_message = "leave_message"
    hang_up = "hang_up"
    retry = "retry"


class CampaignSpec(BaseModel):
    """What ``POST /admin/campaigns`` takes.

    ``cps``: calls per second this campaign may start (all dialers together; the
    account-wide ``Settings.dialer.account_cps`` applies too). ``ring_timeout_s``: Twilio
    ``Timeout`` (ring time before no-answer). ``time_limit_s``: Twilio ``TimeLimit``.
    ``voicemail_message`` is a template like the flow's (``{{first_name}}``).
    ``default_timezone`` is used for contacts imported without one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=120)
    flow: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    from_number: str
    window: CallingWindow = Field(default_factory=CallingWindow)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    max_concurrent: int = Field(5, ge=1, le=500)
    cps: float = Field(1.0, gt=0, le=100)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    voicemail: VoicemailAction = VoicemailAction.hang_up
    voicemail_message: str | None = Field(None, min_length=1, max_length=1000)
    ring_timeout_s: int = Field(30, ge=5, le=600)
    time_limit_s: int = Field(600, ge=10, le=14_400)
    machine_detection: bool = True
    default_timezone: str | None = None

    @field_validator("from_number")
    @classmethod
    def _e164(cls, v: str) -> str:
        if not is_e164(v):
            raise ValueError("from_number must be E.164 (+15550100000)")
        return v

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None and not valid_timezone(v):
            raise ValueError(f"unknown time zone {v!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        if self.voicemail is VoicemailAction.leave_message and not self.voicemail_message:
            raise ValueError("voicemail=leave_message needs a voicemail_message")
        return self

    @property
    def start_ms(self) -> int | None:
        return _ms(self.start_at)

    @property
    def end_ms(self) -> int | None:
        return _ms(self.end_at)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


class Contact(BaseModel):
    """One contact to call: E.164 ``phone``, IANA ``timezone``, template ``variables``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: str
    timezone: str
    variables: dict[str, str] = Field(default_factory=dict)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        if not is_e164(v):
            raise ValueError("phone must be E.164")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if not valid_timezone(v):
            raise ValueError(f"unknown time zone {v!r}")
        return v

    @field_validator("variables")
    @classmethod
    def _variables(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_VARIABLES:
            raise ValueError(f"at most {MAX_VARIABLES} variables")
        for name, value in v.items():
            if not VARIABLE_NAME.match(name):
                raise ValueError(f"bad variable name {name!r} (lower-case identifier)")
            if len(value) > MAX_VARIABLE_CHARS:
                raise ValueError(f"variable {name!r} is longer than {MAX_VARIABLE_CHARS} chars")
        return v
