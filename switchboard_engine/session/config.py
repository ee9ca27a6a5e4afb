"""Session settings and ``session.update``: validated per dialect into one neutral shape.

GA takes ``session.type = "realtime"`` and nests audio settings under ``session.audio``;
beta has them flat (``turn_detection``, ``input_audio_transcription``, ``voice``)
(docs/protocols.md §1 "Session"). Only μ-law (``audio/pcmu``, ``g711_ulaw``) audio is
supported. A refused update raises :class:`~switchboard_engine.session.events.ClientError` and
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from switchboard_engine.session.events import ClientError, Dialect, require_object, require_str

#: Session lifetime reported in ``expires_at`` (s; docs/protocols.md §1: 60 min GA, 30 min beta).
SESSION_TTL_S = {"ga": 3600, "beta": 1800}


@dataclass(slots=True)
class TurnDetection:
    """``server_vad`` / ``semantic_vad`` settings (ms on the audio timeline)."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None
    eagerness: str | None = None


@dataclass(slots=True)
class SessionConfig:
    """Dialect-neutral session settings. Only μ-law (``pcmu``) audio is supported."""

    model: str
    instructions: str = ""
    voice: str = "alloy"
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    transcription: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    max_output_tokens: int | str = "inf"
    temperature: float = 0.8
    speed: float = 1.0

    @property
    def transcription_prompt(self) -> str | None:
        """The transcription ``prompt``, if one is set."""
        t = self.transcription
        prompt = t.get("prompt") if t else None
        return prompt if isinstance(prompt, str) and prompt else None


def updated_config(
    current: SessionConfig, dialect: Dialect, event: dict[str, Any], assistant_spoke: bool
) -> SessionConfig:
    """The config after the ``session.update`` ``event`` (``current`` is not changed).

    ``assistant_spoke``: assistant audio exists, so the voice may no longer change.
    Raises :class:`ClientError`.
    """
    s = require_object(event, "session", "session")
    new = SessionConfig(**{f: getattr(current, f) for f in SessionConfig.__slots__})
    if dialect is Dialect.ga:
        _update_ga(s, new)
    else:
        _update_beta(s, new)
    if new.voice != current.voice and assistant_spoke:
        raise ClientError(
            "cannot_update_voice",
            "Cannot update a conversation's voice if assistant audio is present.",
            "session.voice",
        )
    return new


def _update_ga(s: dict[str, Any], new: SessionConfig) -> None:
    allowed = {
        "type", "model", "instructions", "tools", "tool_choice", "output_modalities",
        "max_output_tokens", "audio", "tracing", "truncation", "prompt", "include",
        "parallel_tool_calls", "reasoning",
    }  # fmt: skip
    _no_unknown(s, allowed, "session")
    if s.get("type") != "realtime":
        raise ClientError(
            "missing_required_parameter",
            "Missing required parameter: 'session.type' (must be 'realtime').",
            "session.type",
        )
    _common_update(s, new, "output_modalities", "max_output_tokens")
    audio = s.get("audio")
    if audio is None:
        return
    if not isinstance(audio, dict):
        raise ClientError("invalid_type", "'session.audio' must be an object.", "session.audio")
    inp = audio.get("input") or {}
    out = audio.get("output") or {}
    for part, obj in (("input", inp), ("output", out)):
        fmt = obj.get("format")
        if fmt is not None:
            kind = fmt.get("type") if isinstance(fmt, dict) else fmt
            if kind != "audio/pcmu":
                raise ClientError(
                    "unsupported_audio_format",
                    f"The local engine only supports audio/pcmu (G.711 μ-law 8 kHz), got {kind!r}.",
                    f"session.audio.{part}.format",
                )
    if "turn_detection" in inp:
        new.turn_detection = _turn_detection(
            inp["turn_detection"], "session.audio.input.turn_detection"
        )
    if "transcription" in inp:
        new.transcription = _transcription(
            inp["transcription"], "session.audio.input.transcription"
        )
    if "voice" in out:
        new.voice = require_str(out["voice"], "session.audio.output.voice")
    if "speed" in out:
        new.speed = float(out["speed"])


def _update_beta(s: dict[str, Any], new: SessionConfig) -> None:
    allowed = {
        "model", "instructions", "tools", "tool_choice", "modalities", "voice",
        "max_response_output_tokens", "input_audio_format", "output_audio_format",
        "turn_detection", "input_audio_transcription", "temperature",
        "input_audio_noise_reduction", "speed", "tracing", "client_secret",
    }  # fmt: skip
    _no_unknown(s, allowed, "session")
    _common_update(s, new, "modalities", "max_response_output_tokens")
    for key in ("input_audio_format", "output_audio_format"):
        if key in s and s[key] != "g711_ulaw":
            raise ClientError(
                "unsupported_audio_format",
                f"The local engine only supports g711_ulaw, got {s[key]!r}.",
                f"session.{key}",
            )
    if "turn_detection" in s:
        new.turn_detection = _turn_detection(s["turn_detection"], "session.turn_detection")
    if "input_audio_transcription" in s:
        new.transcription = _transcription(
            s["input_audio_transcription"], "session.input_audio_transcription"
        )
    if "voice" in s:
        new.voice = require_str(s["voice"], "session.voice")
    if "temperature" in s:
        new.temperature = float(s["temperature"])
    if "speed" in s:
        new.speed = float(s["speed"])


def _common_update(
    s: dict[str, Any], new: SessionConfig, modalities_key: str, max_key: str
) -> None:
    if "instructions" in s:
        new.instructions = require_str(s["instructions"], "session.instructions")
    if "tools" in s:
        new.tools = _tools(s["tools"])
    if "tool_choice" in s:
        tc = s["tool_choice"]
        if not (tc in ("auto", "none", "required") or isinstance(tc, dict)):
            raise ClientError(
                "invalid_value", f"Invalid tool_choice {tc!r}.", "session.tool_choice"
            )
        new.tool_choice = tc
    if modalities_key in s:
        mods = s[modalities_key]
        if not isinstance(mods, list) or not mods or set(mods) - {"text", "audio"}:
            raise ClientError(
                "invalid_value",
                f"'{modalities_key}' must be a list of 'text'/'audio'.",
                f"session.{modalities_key}",
            )
        new.output_modalities = ["audio"] if "audio" in mods else ["text"]
    if max_key in s:
        mx = s[max_key]
        if not (mx == "inf" or (isinstance(mx, int) and 1 <= mx <= 4096)):
            raise ClientError(
                "invalid_value", f"'{max_key}' must be 1-4096 or 'inf'.", f"session.{max_key}"
            )
        new.max_output_tokens = mx


def _no_unknown(obj: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise ClientError(
                "unknown_parameter", f"Unknown parameter: '{prefix}.{key}'.", f"{prefix}.{key}"
            )


def _turn_detection(raw: Any, param: str) -> TurnDetection | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ClientError("invalid_type", f"'{param}' must be an object or null.", param)
    kind = raw.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ClientError(
            "invalid_value", f"Invalid turn detection type {kind!r}.", f"{param}.type"
        )
    td = TurnDetection(type=kind)
    try:
        if raw.get("threshold") is not None:
            td.threshold = float(raw["threshold"])
            if not 0.0 <= td.threshold <= 1.0:
                raise ValueError("threshold must be within 0..1")
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            if raw.get(key) is not None:
                value = int(raw[key])
                if value < 0:
                    raise ValueError(f"{key} must be >= 0")
                setattr(td, key, value)
        for key in ("create_response", "interrupt_response"):
            if raw.get(key) is not None:
                setattr(td, key, bool(raw[key]))
        if raw.get("idle_timeout_ms") is not None:
            td.idle_timeout_ms = int(raw["idle_timeout_ms"])
        if raw.get("eagerness") is not None:
            td.eagerness = str(raw["eagerness"])
    except (TypeError, ValueError) as exc:
        raise ClientError("invalid_value", f"Invalid {param}: {exc}", param) from exc
    return td


def _transcription(raw: Any, param: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ClientError("invalid_type", f"'{param}' must be an object or null.", param)
    out: dict[str, Any] = {"model": raw.get("model") or "whisper-1"}
    for key in ("language", "prompt"):
        if raw.get(key) is not None:
            out[key] = raw[key]
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ClientError("invalid_type", "'session.tools' must be a list.", "session.tools")
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ClientError(
                "missing_required_parameter",
                f"Missing required parameter: 'session.tools[{i}].name'.",
                f"session.tools[{i}].name",
            )
        if tool.get("type", "function") != "function":
            raise ClientError(
                "invalid_value",
                "The local engine supports only function tools.",
                f"session.tools[{i}].type",
            )
    return [dict(t) for t in raw]
