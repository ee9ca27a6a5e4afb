"""Echo mode of a Realtime server for the load benchmark (``switchboard engine --echo``).

Speaks just enough of the GA Realtime protocol (docs/protocols.md §1) for the bridge to run
a call at full rate with no model, VAD or TTS cost:

- on connect ``session.created``; each ``session.update`` is answered ``session.updated``;
- each ``input_audio_buffer.append`` is answered by a ``response.output_audio.delta``
  carrying the same base64 audio, inside a response it opens when none is active
  (``response.created`` + ``response.output_item.added``);
- every ``barge_every_ms`` of input audio (default 3000 ms, staggered per call) it sends
  ``input_audio_buffer.speech_started`` and cancels the active response as server VAD
  does (``response.done`` status ``cancelled``, reason ``turn_detected``), then
  ``speech_stopped`` + ``committed`` 200 ms of audio later; the next append opens a new
  response (a new assistant item);
- ``conversation.item.truncate`` is checked (known item, ``audio_end_ms`` within the audio
  generated) and answered ``conversation.item.truncated``, else ``error``;
- ``response.create`` opens a response unless one is active (then ``error``, like the
  real service), ``response.cancel`` cancels it.

For the benchmark's barge-in and truncate figures it records, per call (the call index
stamped in the audio, see ``bench.stamp``), the CLOCK_MONOTONIC time (ns) each
``speech_started`` was written to the socket and every truncate it received; the
results are written as JSON on SIGTERM/SIGINT (``--out``). All times are ns on
CLOCK_MONOTONIC, comparable across processes on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

import orjson
from picows import WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from app.audio import BYTES_PER_MS, FRAME_MS
from app.call.links import WIRE_LOG, MessageListener
from bench.loop import run_loop
from bench.stamp import payload_bytes, read_stamp

log = logging.getLogger(__name__)

#: Input audio (ms) between a ``speech_started`` and its ``speech_stopped``.
SPEECH_MS = 200
#: Assistant items remembered per connection for truncate checks.
ITEMS_KEPT = 8
#: Barge-in and truncate records kept (bounded memory on long runs).
RECORDS_MAX = 1_000_000
#: An append as Switchboard and the relay send it: parsed without a JSON parser.
_APPEND = b'{"type":"input_audio_buffer.append","audio":"'


class EchoStats:
    """What every connection of one server saw (see the module docstring for units)."""

    def __init__(self) -> None:
        #: (call, t_ns written, assistant item cancelled or "", its generated ms)
        self.barge_ins: list[tuple[int, int, str, float]] = []
        #: (call, t_ns received, item_id, audio_end_ms, generated ms of the item, valid)
        self.truncates: list[tuple[int, int, str, int, float, bool]] = []
        self.appends = 0
        self.connections = 0
        self.errors_sent = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "barge_ins": self.barge_ins,
            "truncates": self.truncates,
            "appends": self.appends,
            "connections": self.connections,
            "errors_sent": self.errors_sent,
        }


_TEXT = WSMsgType.TEXT


class _EchoConnection(MessageListener):
    """One Realtime connection (picows, as Switchboard's own sockets): one reply per
    client event, written at once."""

    def __init__(self, server: EchoServer) -> None:
        super().__init__(1 << 24)
        self.deliver = self._on_message
        self.server = server
        self.stats = server.stats
        self.n = 0  # server event counter
        self.call = -1
        self.appends = 0
        self.period = max(1, server.barge_every_ms // FRAME_MS)
        self.next_barge = self.period
        self.stop_at = -1
        self.response: str | None = None
        self.item: str | None = None
        self.items: dict[str, int] = {}  # assistant item → bytes generated
        self.user_item = ""
        self.responses = 0

    # --- transport ----------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self.stats.connections += 1
        self._send(
            [
                self._event(
                    "session.created",
                    session={
                        "type": "realtime",
                        "object": "realtime.session",
                        "id": f"sess_echo{id(self):x}",
                        "model": "echo",
                        "output_modalities": ["audio"],
                    },
                )
            ]
        )

    # --- events -------------------------------------------------------------------------

    def _event(self, type_: str, **fields: Any) -> bytes:
        self.n += 1
        fields["type"] = type_
        fields["event_id"] = f"evt_{self.n}"
        return orjson.dumps(fields)

    def _send(self, events: list[bytes]) -> None:
        transport = self.transport
        if transport is not None:
            for e in events:
                transport.send(_TEXT, e)

    def _on_message(self, payload: bytes) -> None:
        if payload.startswith(_APPEND) and payload.endswith(b'"}'):
            audio = payload[len(_APPEND) : -2]
            if b'"' not in audio and b"\\" not in audio:  # plain base64: no JSON escapes
                self._append(audio.decode("ascii"))
                return
        try:
            d = orjson.loads(payload)
            t = d["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._send([self._error("invalid_json", "not a JSON event with a type")])
            return
        if t == "input_audio_buffer.append":
            audio = d.get("audio")
            if isinstance(audio, str) and '"' not in audio and "\\" not in audio:
                self._append(audio)
            else:
                self._send([self._error("invalid_value", "append without base64 audio")])
        elif t == "session.update":
            self._send([self._event("session.updated", session=d.get("session") or {})])
        elif t == "conversation.item.truncate":
            self._truncate(d)
        elif t == "response.create":
            if self.response is not None:
                self._send(
                    [
                        self._error(
                            "conversation_already_has_active_response",
                            "a response is in progress",
                            d.get("event_id"),
                        )
                    ]
                )
            else:
                out: list[bytes] = []
                self._open_response(out)
                self._send(out)
        elif t == "response.cancel":
            out = []
            self._cancel("client_cancelled", out)
            self._send(out)

    def _error(self, code: str, message: str, event_id: str | None = None) -> bytes:
        self.stats.errors_sent += 1
        return self._event(
            "error",
            error={
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "event_id": event_id,
            },
        )

    def _open_response(self, out: list[bytes]) -> None:
        self.responses += 1
        rid = f"resp_{self.responses}"
        iid = f"item_a{self.responses}"
        self.response, self.item = rid, iid
        self.items[iid] = 0
        if len(self.items) > ITEMS_KEPT:
            del self.items[next(iter(self.items))]
        out.append(
            self._event(
                "response.created",
                response={
                    "id": rid,
                    "object": "realtime.response",
                    "status": "in_progress",
                    "output": [],
                },
            )
        )
        out.append(
            self._event(
                "response.output_item.added",
                response_id=rid,
                output_index=0,
                item={
                    "id": iid,
                    "type": "message",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                },
            )
        )

    def _cancel(self, reason: str, out: list[bytes]) -> None:
        if self.response is None:
            return
        out.append(
            self._event(
                "response.done",
                response={
                    "id": self.response,
                    "object": "realtime.response",
                    "status": "cancelled",
                    "status_details": {"type": "cancelled", "reason": reason},
                    "output": [
                        {
                            "id": self.item,
                            "type": "message",
                            "role": "assistant",
                            "status": "incomplete",
                            "content": [],
                        }
                    ],
                    "usage": {
                        "total_tokens": 60,
                        "input_tokens": 40,
                        "output_tokens": 20,
                        "input_token_details": {"audio_tokens": 40, "text_tokens": 0},
                        "output_token_details": {"audio_tokens": 20, "text_tokens": 0},
                    },
                },
            )
        )
        self.response = self.item = None

    def _append(self, audio: str) -> None:
        self.stats.appends += 1
        self.appends += 1
        if self.call < 0:
            try:
                self.call = read_stamp(audio)[0]
            except ValueError:
                self.call = 65535
            # Stagger the barge-ins of different calls over the period.
            self.next_barge = self.period + (self.call * 37) % self.period
        out: list[bytes] = []
        barge = self.appends >= self.next_barge
        cancelled, generated = "", 0.0
        if barge:
            self.next_barge += self.period
            self.stop_at = self.appends + SPEECH_MS // FRAME_MS
            self.user_item = f"item_u{self.appends}"
            out.append(
                self._event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=self.appends * FRAME_MS,
                    item_id=self.user_item,
                )
            )
            if self.item is not None:
                cancelled = self.item
                generated = self.items.get(self.item, 0) / BYTES_PER_MS
            self._cancel("turn_detected", out)
        elif self.appends == self.stop_at:
            out.append(
                self._event(
                    "input_audio_buffer.speech_stopped",
                    audio_end_ms=self.appends * FRAME_MS,
                    item_id=self.user_item,
                )
            )
            out.append(
                self._event(
                    "input_audio_buffer.committed", item_id=self.user_item, previous_item_id=None
                )
            )
        if self.response is None:
            self._open_response(out)
        assert self.item is not None
        self.items[self.item] = self.items.get(self.item, 0) + payload_bytes(audio)
        self.n += 1  # the delta, built by hand: the audio is plain base64 (checked above)
        out.append(
            b'{"type":"response.output_audio.delta","event_id":"evt_%d","response_id":"%s",'
            b'"item_id":"%s","output_index":0,"content_index":0,"delta":"%s"}'
            % (self.n, str(self.response).encode(), self.item.encode(), audio.encode())
        )
        if barge and len(self.stats.barge_ins) < RECORDS_MAX:
            t = time.monotonic_ns()
            self._send(out)
            self.stats.barge_ins.append((self.call, t, cancelled, generated))
        else:
            self._send(out)

    def _truncate(self, d: dict[str, Any]) -> None:
        t = time.monotonic_ns()
        item_id = d.get("item_id")
        end_ms = d.get("audio_end_ms")
        generated = self.items.get(item_id, -1) if isinstance(item_id, str) else -1
        valid = isinstance(end_ms, int) and end_ms >= 0 and generated >= 0
        valid = valid and end_ms * BYTES_PER_MS <= generated  # type: ignore[operator]
        if len(self.stats.truncates) < RECORDS_MAX:
            self.stats.truncates.append(
                (
                    self.call,
                    t,
                    str(item_id),
                    end_ms if isinstance(end_ms, int) else -1,
                    generated / BYTES_PER_MS,
                    valid,
                )
            )
        if valid:
            ev = self._event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=d.get("content_index", 0),
                audio_end_ms=end_ms,
            )
        else:
            ev = self._error(
                "invalid_value", "audio_end_ms is past the item's audio", d.get("event_id")
            )
        self._send([ev])


class EchoServer:
    """The echo Realtime server on ``host:port`` (``port=0``: a free one, see ``.port``).

    ``barge_every_ms``: input audio between two ``speech_started`` of one call (ms).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, barge_every_ms: int = 3000) -> None:
        self.host, self.port, self.barge_every_ms = host, port, barge_every_ms
        self.stats = EchoStats()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await ws_create_server(
            self._connection, self.host, self.port, backlog=1024, logger_name=WIRE_LOG
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])

    def _connection(self, request: WSUpgradeRequest) -> _EchoConnection:
        return _EchoConnection(self)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> EchoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def run(host: str, port: int, barge_every_ms: int = 3000, out: Path | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then write the records to ``out`` (JSON) if given."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with EchoServer(host, port, barge_every_ms) as server:
            log.info("echo engine on ws://%s:%d/v1/realtime", host, server.port)
            print(f"listening {server.port}", flush=True)
            await stop.wait()
        if out is not None:
            data = orjson.dumps(server.stats.as_json())
            await asyncio.to_thread(out.write_bytes, data)

    run_loop(main())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--barge-every-ms", type=int, default=3000)
    p.add_argument("--out", type=Path, default=None, help="JSON records written on exit")
    a = p.parse_args(argv)
    run(a.host, a.port, a.barge_every_ms, a.out)


if __name__ == "__main__":
    main()
