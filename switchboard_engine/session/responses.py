"""Responses: ``response.create`` / ``response.cancel`` and the steps of producing one
(an assistant message streamed in deltas, function calls, ``response.done``).

At most one response is active. The connection layer drives the steps
(:meth:`Responses.begin_message`, :meth:`~Responses.message_delta`, …) as the reply is
synthesised; every step returns the server events to send. Protocols.md §1 "Response
object and function calls".
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

import orjson

from app.audio import BYTES_PER_MS
from switchboard_engine.responder import Reply, ReplyInput, ReplyRequest
from switchboard_engine.session.actions import Action, Generate
from switchboard_engine.session.config import SessionConfig
from switchboard_engine.session.conversation import Conversation
from switchboard_engine.session.events import ClientError, Dialect, Event, Wire
from switchboard_engine.session.items import ActiveResponse, Item, text_tokens
from switchboard_engine.session.rendering import response_object

#: Output audio is streamed in deltas of this many ms (100 ms = 800 bytes of μ-law).
OUTPUT_CHUNK_MS = 100


class Responses:
    """The session's responses: ``active`` (or None), the ``ids`` of all so far, and
    ``spoke`` (assistant audio was streamed, so the voice is fixed).

    ``config`` returns the session's current config; ``on_done`` is called with every
    response that ends (completed, failed or cancelled).
    """

    def __init__(
        self,
        wire: Wire,
        conversation: Conversation,
        conversation_id: str,
        config: Callable[[], SessionConfig],
        on_done: Callable[[ActiveResponse], None],
    ) -> None:
        self.wire = wire
        self.conversation = conversation
        self.conversation_id = conversation_id
        self._config = config
        self._on_done = on_done
        self.active: ActiveResponse | None = None
        self.ids: list[str] = []
        self.spoke = False

    @property
    def dialect(self) -> Dialect:
        return self.wire.dialect

    def _render(self, resp: ActiveResponse, usage: dict[str, Any] | None) -> Event:
        return response_object(self.dialect, self._config(), self.conversation_id, resp, usage)

    # --- client events ------------------------------------------------------------------
    def create(self, event: dict[str, Any]) -> list[Action]:
        """``response.create``."""
        if self.active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError("invalid_type", "'response' must be an object.", "response")
        return self.start(params)

    def cancel_event(self, event: dict[str, Any]) -> list[Action]:
        """``response.cancel``."""
        resp = self.active
        wanted = event.get("response_id")
        if resp is None or (wanted is not None and wanted != resp.id):
            raise ClientError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found.",
                "response_id" if wanted is not None else None,
            )
        return self.cancel(resp, "client_cancelled")

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, params: dict[str, Any]) -> list[Action]:
        """Start a response (``params``: the ``response`` object of ``response.create``;
        ``{}`` for one the server creates): ``response.created`` and a :class:`Generate`."""
        c = self._config()
        instructions = params.get("instructions")
        if not isinstance(instructions, str):
            instructions = c.instructions
        key = "output_modalities" if self.dialect is Dialect.ga else "modalities"
        mods = params.get(key)
        modalities = list(c.output_modalities)
        if isinstance(mods, list) and mods:
            modalities = ["audio"] if "audio" in mods else ["text"]
        reply_input, input_item = self.conversation.next_input()
        resp = ActiveResponse(
            id=self.wire.new_id("resp"),
            instructions=instructions,
            modalities=modalities,
            metadata=params.get("metadata"),
            reply_input=reply_input,
            input_item=input_item,
        )
        resp.input_tokens = self.conversation.context_tokens(instructions, c.tools)
        self.active = resp
        self.ids.append(resp.id)
        return [
            self.wire.event("response.created", response=self._render(resp, None)),
            Generate(resp),
        ]

    def reply_request(self, resp: ActiveResponse) -> ReplyRequest:
        """What the responder needs to produce ``resp``'s reply."""
        c = self._config()
        tool_choice = c.tool_choice if isinstance(c.tool_choice, str) else "auto"
        forced = None
        if isinstance(c.tool_choice, dict) and isinstance(c.tool_choice.get("name"), str):
            forced = str(c.tool_choice["name"])
        tools = tuple(t for t in c.tools if t.get("type", "function") == "function")
        names = tuple(str(t.get("name")) for t in tools)
        history = self.conversation.history()
        inp = resp.reply_input
        item = resp.input_item
        if inp.kind == "audio" and item is not None and item.text != inp.text:
            # Transcription may have finished after the response was created.
            inp = ReplyInput("audio", text=item.text, turn_index=inp.turn_index)
        return ReplyRequest(
            resp.instructions,
            inp,
            names,
            tool_choice,
            history,
            tools=tools,
            forced_tool=forced,
            session_instructions=c.instructions,
        )

    def is_active(self, resp: ActiveResponse) -> bool:
        """True while ``resp`` is the active response (not cancelled/finished)."""
        return self.active is resp

    def apply_reply(self, resp: ActiveResponse, reply: Reply) -> None:
        """Mark the input answered if the reply answered it."""
        if reply.answers_input and resp.input_item is not None:
            resp.input_item.answered = True

    def finish(self, resp: ActiveResponse) -> list[Action]:
        """Close ``resp`` as completed: ``response.done``."""
        if self.active is not resp:
            return []
        actions = self.end_message(resp)
        resp.status = "completed"
        return actions + self._done(resp)

    def fail(self, resp: ActiveResponse, message: str) -> list[Action]:
        """Close ``resp`` as failed (e.g. TTS broke): ``response.done`` status failed."""
        if self.active is not resp:
            return []
        actions = self.end_message(resp, status="incomplete")
        resp.status = "failed"
        resp.status_details = {
            "type": "failed",
            "error": {"type": "server_error", "code": "engine_error", "message": message},
        }
        return actions + self._done(resp)

    def cancel(self, resp: ActiveResponse, reason: str) -> list[Action]:
        """Close ``resp`` as cancelled (``turn_detected``: barge-in; ``client_cancelled``)."""
        actions = self.end_message(resp, status="incomplete")
        resp.status = "cancelled"
        resp.status_details = {"type": "cancelled", "reason": reason}
        return actions + self._done(resp)

    def _done(self, resp: ActiveResponse) -> list[Action]:
        self.active = None
        self._on_done(resp)
        return [self.wire.event("response.done", response=self._render(resp, self._usage(resp)))]

    # --- output items ---------------------------------------------------------------------
    def begin_message(self, resp: ActiveResponse) -> list[Action]:
        """Open an assistant message (audio or text per the response's modalities)."""
        audio = "audio" in resp.modalities
        item = Item(
            id=self.wire.new_id("item"),
            type="message",
            role="assistant",
            status="in_progress",
            content_type="audio" if audio else "text",
        )
        resp.message = item
        resp.output.append(item)
        previous = self.conversation.insert(item)
        idx = len(resp.output) - 1
        actions: list[Action] = [
            self.wire.event(
                "response.output_item.added",
                response_id=resp.id,
                output_index=idx,
                item=self.conversation.render(item),
            )
        ]
        actions += self.conversation.added(item, previous, done=False)
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        actions.append(
            self.wire.event(
                "response.content_part.added",
                response_id=resp.id,
                item_id=item.id,
                output_index=idx,
                content_index=0,
                part=part,
            )
        )
        return actions

    def message_delta(self, resp: ActiveResponse, audio: bytes, text: str) -> list[Action]:
        """One streamed step: an audio delta (8 kHz μ-law) and/or its transcript text."""
        item = resp.message
        if item is None:
            return []
        idx = len(resp.output) - 1
        common = {"response_id": resp.id, "item_id": item.id, "output_index": idx}
        ev = self.wire.event
        actions: list[Action] = []
        if item.content_type == "text":
            if text:
                item.text += text
                actions.append(
                    ev("response.output_text.delta", **common, content_index=0, delta=text)
                )
            return actions
        if audio:
            self.spoke = True
            item.audio_ms += len(audio) // BYTES_PER_MS
            item.generated_ms = item.audio_ms
            actions.append(
                ev(
                    "response.output_audio.delta",
                    **common,
                    content_index=0,
                    delta=base64.b64encode(audio).decode("ascii"),
                )
            )
        if text:
            item.text += text
            actions.append(
                ev("response.output_audio_transcript.delta", **common, content_index=0, delta=text)
            )
        return actions

    def end_message(self, resp: ActiveResponse, status: str = "completed") -> list[Action]:
        """Close the open assistant message."""
        item = resp.message
        if item is None:
            return []
        resp.message = None
        item.status = status
        idx = resp.output.index(item)
        common = {"response_id": resp.id, "item_id": item.id, "output_index": idx}
        ev = self.wire.event
        actions: list[Action] = []
        if item.content_type == "text":
            actions.append(
                ev("response.output_text.done", **common, content_index=0, text=item.text)
            )
            part = {"type": "text", "text": item.text}
        else:
            actions.append(ev("response.output_audio.done", **common, content_index=0))
            actions.append(
                ev(
                    "response.output_audio_transcript.done",
                    **common,
                    content_index=0,
                    transcript=item.text,
                )
            )
            part = {"type": "audio", "transcript": item.text}
        actions.append(ev("response.content_part.done", **common, content_index=0, part=part))
        actions += self._item_finished(resp, item, idx)
        return actions

    def _item_finished(self, resp: ActiveResponse, item: Item, idx: int) -> list[Action]:
        rendered = self.conversation.render(item)
        actions: list[Action] = [
            self.wire.event(
                "response.output_item.done", response_id=resp.id, output_index=idx, item=rendered
            )
        ]
        if self.dialect is Dialect.ga:
            items = self.conversation.items
            pos = items.index(item) if item in items else 0
            previous = items[pos - 1].id if pos > 0 else None
            actions.append(
                self.wire.event("conversation.item.done", previous_item_id=previous, item=rendered)
            )
        return actions

    def function_call(
        self, resp: ActiveResponse, name: str, arguments: dict[str, Any]
    ) -> list[Action]:
        """A complete function call output item, arguments streamed in a few deltas."""
        args = orjson.dumps(arguments).decode()
        item = Item(
            id=self.wire.new_id("item"),
            type="function_call",
            status="in_progress",
            call_id=self.wire.new_id("call"),
            name=name,
        )
        resp.output.append(item)
        previous = self.conversation.insert(item)
        idx = len(resp.output) - 1
        ev = self.wire.event
        actions: list[Action] = [
            ev(
                "response.output_item.added",
                response_id=resp.id,
                output_index=idx,
                item=self.conversation.render(item),
            )
        ]
        actions += self.conversation.added(item, previous, done=False)
        common = {"response_id": resp.id, "item_id": item.id, "output_index": idx}
        step = max(8, math.ceil(len(args) / 4))
        for i in range(0, len(args), step):
            actions.append(
                ev(
                    "response.function_call_arguments.delta",
                    **common,
                    call_id=item.call_id,
                    delta=args[i : i + step],
                )
            )
        item.arguments = args
        item.status = "completed"
        done: dict[str, Any] = {**common, "call_id": item.call_id, "arguments": args}
        if self.dialect is Dialect.ga:
            done["name"] = name
        actions.append(ev("response.function_call_arguments.done", **done))
        actions += self._item_finished(resp, item, idx)
        return actions

    def _usage(self, resp: ActiveResponse) -> dict[str, Any]:
        out_text = sum(text_tokens(i.text) + text_tokens(i.arguments) for i in resp.output)
        out_audio = sum(i.generated_ms // 50 for i in resp.output if i.content_type == "audio")
        in_text, in_audio = resp.input_tokens.get("text", 0), resp.input_tokens.get("audio", 0)
        inp, out = in_text + in_audio, out_text + out_audio
        return {
            "total_tokens": inp + out,
            "input_tokens": inp,
            "output_tokens": out,
            "input_token_details": {
                "text_tokens": in_text,
                "audio_tokens": in_audio,
                "cached_tokens": 0,
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }


def split_text(text: str, parts: int) -> list[str]:
    """Split ``text`` into ``parts`` consecutive pieces at word boundaries (some may be "")."""
    if parts <= 1:
        return [text]
    words = text.split(" ")
    out: list[str] = []
    prev = 0
    for i in range(1, parts + 1):
        upto = round(len(words) * i / parts)
        chunk = " ".join(words[prev:upto])
        if chunk and upto < len(words):
            chunk += " "
        out.append(chunk)
        prev = upto
    return out
