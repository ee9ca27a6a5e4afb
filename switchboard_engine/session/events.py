"""Wire plumbing of one Realtime session: event dicts, the dialect, ids, client errors.

Server events are built under their GA names and renamed for the beta dialect on the way
out (docs/protocols.md §1 "Events"). Every id (session, conversation, item, response, call,
event) comes from one per-session counter behind a random prefix.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

Event = dict[str, Any]

#: Events kept in ``events_sent`` / ``events_received`` for introspection (then counted).
RECORD_LIMIT = 20_000

_BETA_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}


class Dialect(StrEnum):
    """Wire dialect of a connection (docs/protocols.md §1 "Connecting")."""

    ga = "ga"
    beta = "beta"


class ClientError(Exception):
    """A client event the engine refuses; becomes an ``error`` server event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class Wire:
    """Makes the session's server events and ids, and keeps the first
    :data:`RECORD_LIMIT` events each way (``events_sent``, ``events_received``; the rest
    are counted in ``dropped_records``)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._prefix = secrets.token_hex(4)
        self._counter = 0
        self.events_sent: list[Event] = []
        self.events_received: list[Event] = []
        self.dropped_records = 0

    def new_id(self, kind: str) -> str:
        """``<kind>_<prefix><8-digit counter>``: unique within the session."""
        self._counter += 1
        return f"{kind}_{self._prefix}{self._counter:08d}"

    def _record(self, log: list[Event], event: Event) -> None:
        if len(log) < RECORD_LIMIT:
            log.append(event)
        else:
            self.dropped_records += 1

    def received(self, event: Event) -> None:
        """Keep a client event for introspection."""
        self._record(self.events_received, event)

    def event(self, type_: str, **fields: Any) -> Event:
        """A server event of GA type ``type_`` (renamed for beta), with a new ``event_id``."""
        if self.dialect is Dialect.beta:
            type_ = _BETA_NAMES.get(type_, type_)
        event: Event = {"type": type_, "event_id": self.new_id("event"), **fields}
        self._record(self.events_sent, event)
        return event

    def error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> Event:
        """An ``error`` server event (the socket stays open)."""
        err = {
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        }
        return self.event("error", error=err)


def require_object(event: dict[str, Any], key: str, param: str) -> dict[str, Any]:
    """``event[key]``, which must be an object. Raises :class:`ClientError`."""
    value = event.get(key)
    if value is None:
        raise ClientError(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    if not isinstance(value, dict):
        raise ClientError("invalid_type", f"'{param}' must be an object.", param)
    return value


def require_str(value: Any, param: str) -> str:
    """``value``, which must be a string. Raises :class:`ClientError`."""
    if value is None:
        raise ClientError(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    if not isinstance(value, str):
        raise ClientError("invalid_type", f"'{param}' must be a string.", param)
    return value
