"""Rendering: the session, its items and responses as JSON objects in a dialect's shape.

Pure functions (docs/protocols.md §1 "Session", "Response object and function calls"). GA
nests audio settings under ``audio`` and names parts ``output_audio``/``output_text``;
beta keeps them flat (``modalities``, ``voice``, ``g711_ulaw``) and says ``audio``/``text``.
"""

from __future__ import annotations

from typing import Any

from switchboard_engine.session.config import SESSION_TTL_S, SessionConfig, TurnDetection
from switchboard_engine.session.events import Dialect, Event
from switchboard_engine.session.items import ActiveResponse, Item


def session_object(
    dialect: Dialect, session_id: str, c: SessionConfig, created_at: int
) -> dict[str, Any]:
    """The ``session`` object of session.created/updated (``created_at``: Unix s)."""
    td = turn_detection_object(dialect, c.turn_detection)
    ttl = SESSION_TTL_S[dialect.value]
    if dialect is Dialect.beta:
        return {
            "id": session_id,
            "object": "realtime.session",
            "model": c.model,
            "expires_at": created_at + ttl,
            "modalities": ["text", "audio"] if "audio" in c.output_modalities else ["text"],
            "instructions": c.instructions,
            "voice": c.voice,
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "input_audio_transcription": c.transcription,
            "input_audio_noise_reduction": None,
            "turn_detection": td,
            "tools": c.tools,
            "tool_choice": c.tool_choice,
            "temperature": c.temperature,
            "max_response_output_tokens": c.max_output_tokens,
            "speed": c.speed,
            "tracing": None,
        }
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": c.model,
        "expires_at": created_at + ttl,
        "output_modalities": list(c.output_modalities),
        "instructions": c.instructions,
        "tools": c.tools,
        "tool_choice": c.tool_choice,
        "max_output_tokens": c.max_output_tokens,
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": c.transcription,
                "noise_reduction": None,
                "turn_detection": td,
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": c.voice, "speed": c.speed},
        },
    }


def turn_detection_object(dialect: Dialect, td: TurnDetection | None) -> dict[str, Any] | None:
    """The ``turn_detection`` object (``None`` when turn detection is off)."""
    if td is None:
        return None
    if td.type == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": td.eagerness or "auto",
            "create_response": td.create_response,
            "interrupt_response": td.interrupt_response,
        }
    out: dict[str, Any] = {
        "type": "server_vad",
        "threshold": td.threshold,
        "prefix_padding_ms": td.prefix_padding_ms,
        "silence_duration_ms": td.silence_duration_ms,
        "create_response": td.create_response,
        "interrupt_response": td.interrupt_response,
    }
    if dialect is Dialect.ga:
        out["idle_timeout_ms"] = td.idle_timeout_ms
    return out


def item_object(dialect: Dialect, item: Item) -> dict[str, Any]:
    """A conversation item (``realtime.item``)."""
    out: dict[str, Any] = {"id": item.id, "object": "realtime.item", "type": item.type}
    if item.type == "function_call":
        out.update(status=item.status, call_id=item.call_id, name=item.name)
        out["arguments"] = item.arguments
        return out
    if item.type == "function_call_output":
        out.update(call_id=item.call_id, output=item.output)
        if dialect is Dialect.ga:
            out["status"] = item.status
        return out
    out.update(status=item.status, role=item.role)
    ga = dialect is Dialect.ga
    ct = item.content_type
    part: dict[str, Any]
    if ct == "input_audio":
        transcript = item.text if item.show_transcript and item.text else None
        part = {"type": "input_audio", "transcript": transcript}
    elif ct == "input_text":
        part = {"type": "input_text", "text": item.text}
    elif ct == "audio":
        part = {"type": "output_audio" if ga else "audio", "transcript": item.text}
    else:
        part = {"type": "output_text" if ga else "text", "text": item.text}
    out["content"] = [part]
    return out


def response_object(
    dialect: Dialect,
    c: SessionConfig,
    conversation_id: str,
    resp: ActiveResponse,
    usage: dict[str, Any] | None,
) -> Event:
    """A response (``realtime.response``); ``usage`` is ``None`` until it is done."""
    out: dict[str, Any] = {
        "id": resp.id,
        "object": "realtime.response",
        "status": resp.status,
        "status_details": resp.status_details,
        "output": [item_object(dialect, i) for i in resp.output],
        "conversation_id": conversation_id,
        "max_output_tokens": c.max_output_tokens,
        "usage": usage,
        "metadata": resp.metadata,
    }
    if dialect is Dialect.beta:
        out.update(
            modalities=["text", "audio"] if "audio" in resp.modalities else ["text"],
            voice=c.voice,
            output_audio_format="g711_ulaw",
            temperature=c.temperature,
        )
    else:
        out["output_modalities"] = resp.modalities
        out["audio"] = {"output": {"format": {"type": "audio/pcmu"}, "voice": c.voice}}
    return out
