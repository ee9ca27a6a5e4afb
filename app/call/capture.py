"""The call session's part that runs ``collect_digits`` (secure keypad capture).

``KeypadCapturing`` is a part of ``app.call.session.CallSession`` (a mixin, like
``app.call.recovery``: the state it touches is the session's, declared below). A
``collect_digits`` function call from the model never reaches the tool registry: the
session starts a ``app.call.keypad.KeypadCapture``, has the prompt spoken, routes every
keypad digit to it (never to the transcript, the logs or the model) and withholds the
caller's audio from the Realtime session until it ends. With the flow's ``spoken``, a
listen-only session hears the caller instead (``OpenListener`` … ``CloseListener``,
``app.call.listener``) and its transcripts come back through ``on_spoken``, to the
capture only. Then the session answers the function call with the capture's outcome (no
digits but the last four) and hands the digits to the digit sink in a ``SecureDigits``
action. Each step is a call event (``keypad_capture``: ``started``, ``retry``,
``collected``, ``failed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from app.call import actions as act
from app.call.conversation import Conversation
from app.call.keypad import CaptureState, KeypadCapture, KeypadSpec
from app.call.limits import KEYPAD_TIMER
from app.realtime.codec import ClientEvents, say_exactly
from flows import Flow
from tools.keypad import NAME as COLLECT_DIGITS

__all__ = ["COLLECT_DIGITS", "KeypadCapturing"]


class KeypadCapturing:
    """Start, feed and finish the call's keypad capture (at most one at a time)."""

    # The session's state this part reads and writes (set in ``CallSession.__init__``).
    flow: Flow
    client: ClientEvents
    conversation: Conversation
    capture: KeypadCapture | None
    _capture_arguments: str
    _capture_started: int
    _out: list[act.Action]
    elapsed_ms: Callable[[], int]
    _realtime: Callable[[str], None]
    _response_create: Callable[..., None]
    _event: Callable[..., None]

    def _start_capture(self, call: act.FunctionCall) -> None:
        """The model called ``collect_digits``: begin (or refuse a second one at once)."""
        try:
            args: Any = orjson.loads(call.arguments) if call.arguments.strip() else {}
        except orjson.JSONDecodeError:
            args = None
        if self.capture is not None or not isinstance(args, dict):
            why = "a keypad capture is already running" if self.capture else "bad arguments"
            self._answer(call.call_id, call.arguments, _refused(why), "refused")
            return
        rules = self.flow.collect_digits
        max_digits = _int(args.get("max_digits"), rules.max_digits)
        spec = KeypadSpec(
            purpose=str(args.get("purpose") or "digits")[:40],
            prompt=str(args.get("prompt") or rules.prompt)[:300],
            retry_prompt=rules.retry_prompt,
            max_digits=max_digits,
            min_digits=min(_int(args.get("min_digits"), rules.min_digits), max_digits),
            finish_on_key=rules.finish_on_key,
            first_digit_timeout_ms=rules.first_digit_timeout_ms,
            inter_digit_timeout_ms=rules.inter_digit_timeout_ms,
            retries=rules.retries,
            check=rules.check,
            pattern=rules.pattern,
            spoken=rules.spoken,
        )
        self.capture = KeypadCapture(call.call_id, spec)
        self._capture_arguments = call.arguments
        self._capture_started = self.elapsed_ms()
        self._event("keypad_capture", state="started", purpose=spec.purpose)
        self._response_create(say_exactly(spec.prompt), "collect")
        self._out.append(act.StartTimer(KEYPAD_TIMER, spec.first_digit_timeout_ms))
        if spec.spoken:
            self._out.append(act.OpenListener())

    def _capture_digit(self, digit: str) -> None:
        capture = self.capture
        assert capture is not None
        if capture.on_digit(digit):
            self._attempt_over(capture)
        else:
            self._out.append(act.StartTimer(KEYPAD_TIMER, capture.timeout_ms()))

    def _capture_spoken(self, text: str) -> None:
        """A transcript from the listen-only session (never stored, logged or relayed)."""
        capture = self.capture
        if capture is not None and capture.on_spoken(text):
            self._attempt_over(capture)

    def _capture_timeout(self) -> None:
        capture = self.capture
        if capture is not None and capture.on_timeout():
            self._attempt_over(capture)

    def _attempt_over(self, capture: KeypadCapture) -> None:
        if not capture.done:  # rejected, retries left
            self._event("keypad_capture", state="retry", reason=capture.reason)
            self._response_create(say_exactly(capture.spec.retry_prompt), "collect")
            self._out.append(act.StartTimer(KEYPAD_TIMER, capture.timeout_ms()))
            return
        self._stop_capture(capture)
        output = capture.output()
        self.capture = None
        if capture.state is CaptureState.collected:
            digits = capture.take_value()
            self._event(
                "keypad_capture",
                state="collected",
                purpose=capture.spec.purpose,
                digits=len(digits),
                attempts=capture.attempts,
            )
            self._out.append(act.SecureDigits(capture.call_id, capture.spec.purpose, digits))
            self._answer(capture.call_id, self._capture_arguments, output, None)
        else:
            self._event("keypad_capture", state="failed", reason=capture.reason)
            self._answer(capture.call_id, self._capture_arguments, output, capture.reason)
        self._response_create(None, "tool")

    def _cancel_capture(self, reason: str) -> None:
        """The call ends with a capture running: drop what was entered, record why."""
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.cancel(reason)
            self._stop_capture(capture)
            self._event("keypad_capture", state="failed", reason=reason)

    def _stop_capture(self, capture: KeypadCapture) -> None:
        """The capture is over: its timer stops, its listen-only session closes."""
        self._out.append(act.CancelTimer(KEYPAD_TIMER))
        if capture.spec.spoken:
            self._out.append(act.CloseListener())

    def _answer(
        self, call_id: str, arguments: str, output: dict[str, Any], error: str | None
    ) -> None:
        """The ``function_call_output`` for the capture, stored like any tool call."""
        at = self.elapsed_ms()
        took = float(at - self._capture_started) if error != "refused" else 0.0
        self._out.append(
            act.Store(
                act.StoreToolCall(COLLECT_DIGITS, call_id, arguments, output, error, took, at)
            )
        )
        text = orjson.dumps(output).decode()
        self.conversation.function_output(call_id, text)
        self._realtime(self.client.function_output(call_id, text))


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and 1 <= value <= 32 else default


def _refused(message: str) -> dict[str, Any]:
    return {"ok": False, "collected": False, "error": {"code": "refused", "message": message}}
