"""The Realtime analyzer against a scripted Realtime peer on a real socket: one
``response.create`` out of band (``conversation: "none"``, text only), valid for the
``openai`` SDK's GA and beta client models; the JSON answer read from the text deltas or
from ``response.done``; an error event or a failed response is ``AnalysisFailed``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from app.analysis.model import AnalysisInput, ToolUse, Turn
from app.analysis.realtime import RealtimeAnalyzer, parse_answer
from app.errors import AnalysisFailed
from app.realtime.dialect import Endpoint
from flows import FlowCatalog
from tests.protocol import validate

CALL = AnalysisInput(
    call_sid="CA1",
    flow="support",
    direction="inbound",
    end_reason="hangup: caller finished",
    turns=[Turn("user", "Where is order 1042?", 0), Turn("assistant", "It shipped.", 1000)],
    tools=[ToolUse("get_order_status", {"order_id": "1042"}, {"status": "shipped"})],
)
ANSWER = {
    "summary": "The caller asked about order 1042; it has shipped.",
    "fields": {"resolved": True, "reason": "order_status", "order_id": "1042"},
}

Reply = Callable[[dict[str, Any]], list[dict[str, Any]]]


def deltas(event: dict[str, Any]) -> list[dict[str, Any]]:
    text = orjson.dumps(ANSWER).decode()
    return [
        {"type": "response.output_text.delta", "delta": text[:20]},
        {"type": "response.output_text.delta", "delta": text[20:]},
        {"type": "response.done", "response": {"status": "completed", "output": []}},
    ]


@pytest.fixture
async def peer() -> AsyncIterator[Any]:
    """``await peer(reply, beta)`` → the URL of a Realtime peer answering with ``reply``."""
    servers: list[Any] = []
    seen: list[dict[str, Any]] = []

    async def start(reply: Reply, beta: bool = False) -> str:
        async def handler(ws: ServerConnection) -> None:
            async for raw in ws:
                event = orjson.loads(raw)
                seen.append({"event": event, "headers": dict(ws.request.headers)})
                validate(event, side="client", beta=beta)
                for answer in reply(event):
                    await ws.send(orjson.dumps(answer).decode())

        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"

    start.seen = seen  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_out_of_band_text_response(peer: Any) -> None:
    spec = FlowCatalog.load().flows["support"].analysis
    assert spec is not None
    url = await peer(deltas)
    analyzer = RealtimeAnalyzer(Endpoint(url, {"Authorization": "Bearer sk-test"}, False), "m")
    got = await analyzer.analyze(CALL, spec)
    assert got == ANSWER
    (sent,) = peer.seen
    event = sent["event"]
    assert sent["headers"]["authorization"] == "Bearer sk-test"
    assert event["type"] == "response.create"
    response = event["response"]
    assert response["conversation"] == "none" and response["output_modalities"] == ["text"]
    assert '"order_id"' in response["instructions"]  # the schema is in the instructions
    text = response["input"][0]["content"][0]["text"]
    assert "Caller: Where is order 1042?" in text and "get_order_status" in text


async def test_beta_dialect_and_the_answer_in_response_done(peer: Any) -> None:
    spec = FlowCatalog.load().flows["support"].analysis
    assert spec is not None

    def done_only(event: dict[str, Any]) -> list[dict[str, Any]]:
        assert event["response"]["modalities"] == ["text"]
        text = "```json\n" + orjson.dumps(ANSWER).decode() + "\n```"
        output = [{"type": "message", "content": [{"type": "text", "text": text}]}]
        return [{"type": "response.done", "response": {"status": "completed", "output": output}}]

    url = await peer(done_only, beta=True)
    analyzer = RealtimeAnalyzer(Endpoint(url, {}, True), "m")
    assert await analyzer.analyze(CALL, spec) == ANSWER


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([{"type": "error", "error": {"message": "rate limited"}}], "rate limited"),
        ([{"type": "response.done", "response": {"status": "failed"}}], "failed"),
        (
            [
                {"type": "response.output_text.delta", "delta": "I cannot do that."},
                {"type": "response.done", "response": {"status": "completed"}},
            ],
            "no JSON object",
        ),
    ],
)
async def test_failures(peer: Any, events: list[dict[str, Any]], why: str) -> None:
    spec = FlowCatalog.load().flows["support"].analysis
    assert spec is not None
    url = await peer(lambda event: events)
    with pytest.raises(AnalysisFailed, match=why):
        await RealtimeAnalyzer(Endpoint(url, {}, False), "m").analyze(CALL, spec)


async def test_nothing_listening_is_a_failure() -> None:
    spec = FlowCatalog.load().flows["support"].analysis
    assert spec is not None
    analyzer = RealtimeAnalyzer(Endpoint("ws://127.0.0.1:9/v1/realtime", {}, False), "m")
    with pytest.raises(AnalysisFailed, match="connection failed"):
        await analyzer.analyze(CALL, spec)


def test_parse_answer() -> None:
    assert parse_answer('Here: {"summary": "s", "fields": {"a": 1}} ok') == {
        "summary": "s",
        "fields": {"a": 1},
    }
    with pytest.raises(AnalysisFailed):
        parse_answer("{not json}")
