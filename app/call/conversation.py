"""The conversation as the caller lived it, kept to seed a new Realtime session.

A Realtime session cannot be resumed (docs/protocols.md §1 "Session"): after a dropped
socket, a liveness timeout or the service's session cap, a new session starts empty. The
call session records every turn here as it becomes final — the caller's turns as
transcribed, the agent's as heard (cut at barge-in), function calls with their outputs —
and ``replay`` turns them into ``conversation.item.create`` client events for the new
session, oldest first, so the model continues with its context.

Bounded: the oldest entries go first past ``max_entries``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from app.realtime.codec import ClientEvents

Kind = Literal["user", "assistant", "function_call", "function_call_output"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One conversation item: ``text`` for messages; ``call_id``, ``name`` and
    ``arguments`` (JSON text) for a function call; ``call_id`` and ``text`` (the output,
    JSON text) for its output."""

    kind: Kind
    text: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = ""


class Conversation:
    """Final turns of one call, in order (``entries``)."""

    __slots__ = ("entries",)

    def __init__(self, max_entries: int = 200) -> None:
        self.entries: deque[Entry] = deque(maxlen=max_entries)

    def __len__(self) -> int:
        return len(self.entries)

    def user(self, text: str) -> None:
        if text:
            self.entries.append(Entry("user", text))

    def assistant(self, text: str) -> None:
        if text:
            self.entries.append(Entry("assistant", text))

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        self.entries.append(Entry("function_call", call_id=call_id, name=name, arguments=arguments))

    def function_output(self, call_id: str, output: str) -> None:
        self.entries.append(Entry("function_call_output", output, call_id=call_id))

    def replay(self, client: ClientEvents) -> list[str]:
        """``conversation.item.create`` events re-creating every entry, oldest first.

        A function call whose output was lost with the old session (it never came back) is
        left out with its call: the model would otherwise wait for an output that never
        comes.
        """
        answered = {e.call_id for e in self.entries if e.kind == "function_call_output"}
        called = {e.call_id for e in self.entries if e.kind == "function_call"}
        out: list[str] = []
        for e in self.entries:
            item: dict[str, Any]
            if e.kind == "user":
                out.append(client.user_text(e.text))
                continue
            if e.kind == "assistant":
                out.append(client.assistant_text(e.text))
                continue
            if e.kind == "function_call":
                if e.call_id not in answered:
                    continue
                item = {
                    "type": "function_call",
                    "call_id": e.call_id,
                    "name": e.name,
                    "arguments": e.arguments,
                }
            else:
                if e.call_id not in called:
                    continue
                item = {"type": "function_call_output", "call_id": e.call_id, "output": e.text}
            out.append(client.item_create(item))
        return out
