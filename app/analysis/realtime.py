"""The analysis by the configured Realtime model: one out-of-band text response.

A fresh Realtime WebSocket (the call's own session is over) gets one client event,
``response.create`` with ``conversation: "none"`` (out of band: nothing is added to a
conversation), text output only, the analysis instructions, and the call as the
response's ``input`` (one user message: the transcript and the tool calls). The model
answers one JSON object ``{"summary": …, "fields": {…}}``, read from the text deltas
(``response.output_text.delta``; beta: ``response.text.delta``) or from ``response.done``.

OpenAI Realtime guide, "Out-of-band responses" and the ``response.create`` reference
(docs/protocols.md §1); the beta dialect names its output ``modalities``.
"""

from __future__ import annotations

from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from app.analysis.model import AnalysisInput
from app.errors import AnalysisFailed
from app.realtime.dialect import Endpoint
from flows.analysis import AnalysisSettings

#: Largest Realtime message accepted (bytes).
MAX_MESSAGE = 4 * 1024 * 1024


def instructions(spec: AnalysisSettings) -> str:
    """The out-of-band response's instructions: the task, the schema, the output shape."""
    schema = orjson.dumps(spec.fields).decode()
    lines = [
        "You analyse a finished phone call between a caller and a voice agent.",
        "Answer with one JSON object and nothing else, with two keys:",
        '"summary": '
        + (
            "two or three sentences on what the call was about and how it ended"
            if spec.summary
            else "null"
        ),
        f'"fields": an object that is valid against this JSON Schema: {schema}',
        "Use only what the transcript and the tool calls show; leave out a field you"
        " cannot fill unless the schema requires it.",
    ]
    if spec.instructions:
        lines.append(spec.instructions)
    return "\n".join(lines)


def call_text(call: AnalysisInput, max_chars: int) -> str:
    tools = "\n".join(
        f"- {t.name}({orjson.dumps(t.arguments).decode()}) -> "
        f"{t.error or orjson.dumps(t.result).decode()[:500]}"
        for t in call.tools
    )
    return (
        f"Flow: {call.flow}. Direction: {call.direction}. End: {call.end_reason or 'unknown'}.\n"
        f"Transcript:\n{call.transcript_text(max_chars)}\n"
        f"Tool calls:\n{tools or '(none)'}"
    )


def response_create(
    call: AnalysisInput, spec: AnalysisSettings, beta: bool, max_chars: int
) -> dict[str, Any]:
    """The ``response.create`` client event."""
    response: dict[str, Any] = {
        "conversation": "none",
        "instructions": instructions(spec),
        "metadata": {"purpose": "post_call_analysis", "call_sid": call.call_sid},
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": call_text(call, max_chars)}],
            }
        ],
    }
    if beta:
        response["modalities"] = ["text"]
    else:
        response["output_modalities"] = ["text"]
    return {"type": "response.create", "response": response}


def parse_answer(text: str) -> dict[str, Any]:
    """The JSON object in the model's text (a ```json fence is allowed). Raises
    ``AnalysisFailed``."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body[4:] if body.lower().startswith("json") else body
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise AnalysisFailed(f"the model answered no JSON object: {text[:200]!r}")
    try:
        data = orjson.loads(body[start : end + 1])
    except orjson.JSONDecodeError as exc:
        raise AnalysisFailed(f"the model's JSON does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise AnalysisFailed("the model's answer is not a JSON object")
    fields = data.get("fields")
    summary = data.get("summary")
    return {
        "summary": str(summary) if summary is not None else None,
        "fields": fields if isinstance(fields, dict) else {},
    }


def _done_text(event: dict[str, Any]) -> str:
    texts = []
    for item in (event.get("response") or {}).get("output") or []:
        for part in item.get("content") or []:
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "".join(texts)


class RealtimeAnalyzer:
    """Asks the Realtime model (see the module docstring). ``endpoint``: where and how
    to connect (``app.realtime.dialect.endpoint``)."""

    engine = "realtime"

    def __init__(
        self, endpoint: Endpoint, model: str, max_chars: int = 24_000, open_timeout_s: float = 5.0
    ) -> None:
        self.endpoint = endpoint
        self.open_timeout_s = open_timeout_s
        self.model: str | None = model
        self.max_chars = max_chars

    async def analyze(self, call: AnalysisInput, spec: AnalysisSettings) -> dict[str, Any]:
        """The parsed answer. Raises ``AnalysisFailed`` (the caller bounds the time)."""
        event = response_create(call, spec, self.endpoint.beta, self.max_chars)
        text = ""
        try:
            async with connect(
                self.endpoint.url,
                additional_headers=self.endpoint.headers,
                max_size=MAX_MESSAGE,
                open_timeout=self.open_timeout_s,
            ) as ws:
                await ws.send(orjson.dumps(event).decode())
                async for raw in ws:
                    message = orjson.loads(raw)
                    kind = message.get("type", "")
                    if kind in ("response.output_text.delta", "response.text.delta"):
                        text += str(message.get("delta", ""))
                    elif kind == "error":
                        detail = (message.get("error") or {}).get("message", "error")
                        raise AnalysisFailed(f"Realtime error: {detail}")
                    elif kind == "response.done":
                        response = message.get("response") or {}
                        if response.get("status") not in (None, "completed"):
                            why = response.get("status_details") or response.get("status")
                            raise AnalysisFailed(f"the analysis response ended {why}")
                        text = text or _done_text(message)
                        break
        except (OSError, WebSocketException, orjson.JSONDecodeError) as exc:
            raise AnalysisFailed(f"Realtime connection failed: {exc}") from None
        return parse_answer(text)
