"""Structured logging: one JSON object per line, ``call_sid`` on every line of a call.

``bind_call(call_sid)`` sets a context variable that every task of that call inherits.
Phone numbers in messages are masked by the ``phone`` helpers before they are logged;
secrets are never passed to the logger (settings hold them as ``SecretStr``).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

call_sid_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_sid", default=None)

_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


def bind_call(call_sid: str | None) -> contextvars.Token[str | None]:
    """Tag every log line of the current task (and the tasks it starts) with ``call_sid``."""
    return call_sid_var.set(call_sid)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_sid = call_sid_var.get()
        if call_sid:
            out["call_sid"] = call_sid
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        call_sid = call_sid_var.get()
        return f"{base} call_sid={call_sid}" if call_sid else base


def configure(level: str = "INFO", json: bool = True) -> None:
    """Configure the root logger once (idempotent): JSON or plain text to stderr."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("websockets", "httpx", "httpcore", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
