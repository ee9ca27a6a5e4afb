"""The contract between the call session and the tools.

A tool is an async callable with a JSON Schema for its arguments. It receives the
validated arguments and a ``ToolContext`` (who is on the call, the backends, and
``CallControl`` for call-moving effects such as transfer and hang-up) and returns a
JSON-serialisable ``dict`` that is sent to the model as ``function_call_output``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Facts about the call a tool may use. Numbers are E.164 (unmasked: tools need them)."""

    call_sid: str
    direction: str
    from_number: str
    to_number: str
    flow: str
    transfer_targets: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)


class CallControl(Protocol):
    """Effects a tool may request on its call; carried out by the call session."""

    def request_transfer(self, to_number: str, reason: str, mode: str | None = None) -> None:
        """Move the call to ``to_number`` once the current audio has played; ``mode``
        ``cold`` or ``warm`` (README "Warm transfer"), None for the flow's default.

        Raises ``app.errors.ToolRefused`` when a transfer was already requested.
        """

    def request_hangup(self, reason: str) -> None:
        """Hang up once the goodbye audio has played (its mark came back)."""

    def record_routing(self, target: str, reason: str) -> None:
        """Record a routing decision (non-blocking)."""


class Customers(Protocol):
    """CRM backend. The default lives in Redis; a real CRM implements the same methods."""

    async def by_phone(self, e164: str) -> dict[str, Any] | None: ...
    async def by_account(self, account_id: str) -> dict[str, Any] | None: ...


class Orders(Protocol):
    """Orders backend. The default lives in Redis; an HTTP backend implements the same."""

    async def get(self, order_id: str) -> dict[str, Any] | None: ...
    async def create(self, account_id: str, item: str, quantity: int) -> dict[str, Any]: ...


class Outcomes(Protocol):
    """Campaign outcomes backend (the dialer's, ``app.dialer.outcomes``): what the called
    person decided on an outbound campaign call, found by the call's SID."""

    async def record(self, call_sid: str, outcome: str, detail: str) -> bool:
        """Record ``outcome`` (``confirmed``, ``rescheduled``, ``cancelled``,
        ``wrong_person``) with free-text ``detail``; False when the call is not a
        campaign call. An opt-out already recorded on the call is kept."""
        ...

    async def opt_out(self, call_sid: str, reason: str) -> bool:
        """Opt the called number out of the call's campaign; False when the call is not
        a campaign call."""
        ...


@dataclass(frozen=True, slots=True)
class Backends:
    customers: Customers
    orders: Orders
    #: Campaign outcomes; None where no dialer is wired (the outcome tools then refuse).
    outcomes: Outcomes | None = None


@dataclass(frozen=True, slots=True)
class ToolContext:
    call: CallInfo
    control: CallControl
    backends: Backends


ToolFn = Callable[[dict[str, Any], ToolContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: name, description and JSON Schema as sent in ``session.update``."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn
    #: Default timeout; a flow's ``tool_timeouts_ms`` overrides it.
    timeout_ms: int = 5000

    def definition(self) -> dict[str, Any]:
        """The Realtime ``tools`` entry (docs/protocols.md §1 "Session")."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """Result of one invocation: ``output`` goes to the model as JSON.

    ``error`` is None on success, else a code (``invalid_arguments``, ``timeout``,
    ``refused``, ``unknown_tool``, ``tool_error``); ``duration_ms`` is wall time.
    """

    name: str
    call_id: str
    arguments: str
    output: dict[str, Any]
    error: str | None
    duration_ms: float
