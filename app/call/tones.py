"""The call session's part that runs ``send_dtmf`` (keypad tones out to an IVR).

``DtmfSending`` is a part of ``app.call.session.CallSession`` (a mixin, like
``app.call.recovery``). A ``send_dtmf`` function call never reaches the tool registry:
the session renders the tones (``app.call.dtmf``), sends them to the carrier as
``media`` messages of at most ``CHUNK_BYTES`` followed by a ``mark``, and answers the
function call when that mark's echo says the carrier played them
(``{"ok": true, "sent": digits, "duration_ms": ms}``); a ``dtmf_sent`` call event records
it. One sequence at a time: a second call while one plays is refused at once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from app.call import actions as act
from app.call.conversation import Conversation
from app.call.dtmf import DIGITS_RE, tones
from app.realtime.codec import ClientEvents
from flows import Flow
from tools.dtmf import NAME as SEND_DTMF

__all__ = ["SEND_DTMF", "DtmfSending"]

#: Largest μ-law payload (bytes, 1 s) in one outbound ``media`` message.
CHUNK_BYTES = 8000


class DtmfSending:
    """Send keypad tones and answer ``send_dtmf`` once they played."""

    # The session's state this part reads and writes (set in ``CallSession.__init__``).
    flow: Flow
    stream_sid: str
    client: ClientEvents
    conversation: Conversation
    tones_pending: tuple[str, str, str, int] | None  # (mark, call_id, digits, ms)
    _tones_call: act.FunctionCall
    _out: list[act.Action]
    elapsed_ms: Callable[[], int]
    _realtime: Callable[[str], None]
    _response_create: Callable[..., None]
    _event: Callable[..., None]

    def _send_tones(self, call: act.FunctionCall) -> None:
        try:
            args: Any = orjson.loads(call.arguments) if call.arguments.strip() else {}
        except orjson.JSONDecodeError:
            args = None
        digits = args.get("digits") if isinstance(args, dict) else None
        if self.tones_pending is not None:
            self._tones_answer(call, _error("refused", "keys are still being pressed"))
            return
        if not isinstance(digits, str) or DIGITS_RE.match(digits) is None:
            self._tones_answer(call, _error("invalid_arguments", "digits: 0-9 * # A-D w"))
            return
        rules = self.flow.send_dtmf
        audio = tones(digits, tone_ms=rules.tone_ms, gap_ms=rules.gap_ms)
        for i in range(0, len(audio), CHUNK_BYTES):
            payload = base64.b64encode(audio[i : i + CHUNK_BYTES]).decode()
            self._out.append(act.SendCarrier(_media(self.stream_sid, payload)))
        mark = f"dtmf:{call.call_id}"
        self._out.append(act.SendCarrier(_mark(self.stream_sid, mark)))
        ms = len(audio) // 8
        self.tones_pending = (mark, call.call_id, digits, ms)
        self._tones_call = call
        self._event("dtmf_sent", digits=digits, duration_ms=ms)

    def _tones_played(self, name: str) -> bool:
        """A mark echo: True when it was the pending tones' (they have played)."""
        pending = self.tones_pending
        if pending is None or name != pending[0]:
            return False
        self.tones_pending = None
        _, _, digits, ms = pending
        self._tones_answer(self._tones_call, {"ok": True, "sent": digits, "duration_ms": ms})
        return True

    def _tones_answer(self, call: act.FunctionCall, output: dict[str, Any]) -> None:
        error = None if output.get("ok") else str(output["error"]["code"])
        at = self.elapsed_ms()
        self._out.append(
            act.Store(
                act.StoreToolCall(SEND_DTMF, call.call_id, call.arguments, output, error, 0.0, at)
            )
        )
        text = orjson.dumps(output).decode()
        self.conversation.function_output(call.call_id, text)
        self._realtime(self.client.function_output(call.call_id, text))
        self._response_create(None, "tool")


def _media(stream_sid: str, payload: str) -> str:
    return orjson.dumps(
        {"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}
    ).decode()


def _mark(stream_sid: str, name: str) -> str:
    return orjson.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}).decode()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}
