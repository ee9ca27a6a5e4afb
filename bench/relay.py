"""The bare relay: the baseline Switchboard is measured against.

What a minimal Twilio ↔ Realtime sample does and nothing more: ``websockets`` on both
sides (server for Twilio's media socket, client for the Realtime socket), ``orjson`` for
the JSON, no webhook, no token, no store, no tools, no metrics, no logging per call.

- ``start``: open the Realtime socket, send a ``session.update`` (μ-law in and out).
- ``media``: ``input_audio_buffer.append`` with the payload; remember its ``timestamp``.
- ``response.output_audio.delta``: ``media`` to Twilio, then a ``mark``.
- ``mark`` echo: forget the oldest mark.
- ``input_audio_buffer.speech_started`` while marks are pending: ``clear``, then
  ``conversation.item.truncate`` at the inbound timestamp elapsed since the response's
  first delta (the samples' estimate of what was heard).

Run: ``python -m bench.relay --port 8000 --realtime-url ws://127.0.0.1:8765/v1/realtime``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import deque
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.loop import run_loop


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


class RelayCall:
    """One call: Twilio socket ↔ Realtime socket."""

    def __init__(self, twilio: ServerConnection, realtime_url: str) -> None:
        self.twilio = twilio
        self.realtime_url = realtime_url
        self.stream_sid = ""
        self.latest_ts = 0
        self.response_start_ts: int | None = None
        self.last_item: str | None = None
        self.marks: deque[str] = deque()
        self.mark_n = 0

    async def run(self) -> None:
        async for message in self.twilio:
            d = orjson.loads(message)
            if d.get("event") == "start":
                self.stream_sid = d["start"]["streamSid"]
                break
        else:
            return
        async with connect(
            self.realtime_url,
            additional_headers={"Authorization": "Bearer relay"},
            compression=None,
        ) as rt:
            await rt.send(
                _dumps(
                    {
                        "type": "session.update",
                        "session": {
                            "type": "realtime",
                            "audio": {
                                "input": {"format": {"type": "audio/pcmu"}},
                                "output": {"format": {"type": "audio/pcmu"}},
                            },
                        },
                    }
                )
            )
            tasks = [
                asyncio.create_task(self._from_twilio(rt)),
                asyncio.create_task(self._from_realtime(rt)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()

    async def _from_twilio(self, rt: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.twilio:
                d = orjson.loads(message)
                event = d.get("event")
                if event == "media":
                    self.latest_ts = int(d["media"]["timestamp"])
                    await rt.send(
                        _dumps(
                            {"type": "input_audio_buffer.append", "audio": d["media"]["payload"]}
                        )
                    )
                elif event == "mark":
                    if self.marks:
                        self.marks.popleft()
                elif event == "stop":
                    return

    async def _from_realtime(self, rt: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in rt:
                d = orjson.loads(message)
                t = d.get("type")
                if t == "response.output_audio.delta":
                    await self.twilio.send(
                        _dumps(
                            {
                                "event": "media",
                                "streamSid": self.stream_sid,
                                "media": {"payload": d["delta"]},
                            }
                        )
                    )
                    if self.response_start_ts is None:
                        self.response_start_ts = self.latest_ts
                    self.last_item = d.get("item_id")
                    self.mark_n += 1
                    name = f"m{self.mark_n}"
                    await self.twilio.send(
                        _dumps(
                            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
                        )
                    )
                    self.marks.append(name)
                elif (
                    t == "input_audio_buffer.speech_started"
                    and self.marks
                    and self.response_start_ts is not None
                ):
                    elapsed = self.latest_ts - self.response_start_ts
                    await self.twilio.send(_dumps({"event": "clear", "streamSid": self.stream_sid}))
                    if self.last_item:
                        await rt.send(
                            _dumps(
                                {
                                    "type": "conversation.item.truncate",
                                    "item_id": self.last_item,
                                    "content_index": 0,
                                    "audio_end_ms": elapsed,
                                }
                            )
                        )
                    self.marks.clear()
                    self.last_item = None
                    self.response_start_ts = None


async def start_relay(host: str, port: int, realtime_url: str) -> Server:
    """Start the relay on ``host:port`` (``port=0``: a free one); close the returned server."""

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await RelayCall(ws, realtime_url).run()

    return await serve(handler, host, port, compression=None, max_size=2**20, backlog=1024)


async def serve_relay(host: str, port: int, realtime_url: str) -> None:
    """Serve until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await start_relay(host, port, realtime_url)
    print(f"listening {port}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--realtime-url", default="ws://127.0.0.1:8765/v1/realtime")
    a = p.parse_args(argv)
    run_loop(serve_relay(a.host, a.port, a.realtime_url))


if __name__ == "__main__":
    main()
