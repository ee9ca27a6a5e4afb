"""Per-dialect connection details and ``session.update`` shapes (docs/protocols.md §1).

- ``openai-ga``: ``wss://api.openai.com/v1/realtime?model=M``, ``Authorization: Bearer K``
- ``openai-beta``: the same URL (model e.g. ``gpt-4o-realtime-preview``) plus
  ``OpenAI-Beta: realtime=v1``
- ``azure-ga``: ``wss://RES.openai.azure.com/openai/v1/realtime?model=DEPLOYMENT``, ``api-key: K``
- ``azure-beta``: ``wss://RES.openai.azure.com/openai/realtime?api-version=V&deployment=D``,
  ``api-key: K`` (beta event names)

For Azure, ``SWITCHBOARD_REALTIME_URL`` is the one place the resource, the deployment and
(beta) the API version are named: it must carry the query parameters above. With no key
and no URL configured the local engine (``switchboard engine``) is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from app.errors import ConfigError
from app.settings import RealtimeDialect, Settings
from flows import Flow, TranscriptionSettings

OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"
#: Query parameters an Azure Realtime URL must carry, by dialect (Azure OpenAI "Realtime
#: API": GA ``/openai/v1/realtime?model=``, preview ``/openai/realtime?api-version=&deployment=``).
AZURE_QUERY = {
    RealtimeDialect.azure_ga: ("model",),
    RealtimeDialect.azure_beta: ("api-version", "deployment"),
}
AZURE_EXAMPLE = {
    RealtimeDialect.azure_ga: "wss://RES.openai.azure.com/openai/v1/realtime?model=DEPLOYMENT",
    RealtimeDialect.azure_beta: (
        "wss://RES.openai.azure.com/openai/realtime?api-version=2025-04-01-preview"
        "&deployment=DEPLOYMENT"
    ),
}
#: GA μ-law format object (``audio/pcmu`` = G.711 μ-law 8 kHz).
GA_PCMU = {"type": "audio/pcmu"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to open a Realtime WebSocket. ``headers`` hold the secret: never log them."""

    url: str
    headers: dict[str, str]
    beta: bool

    def redacted_url(self) -> str:
        return self.url.split("?", 1)[0]


def endpoint(settings: Settings) -> Endpoint:
    """The Realtime endpoint for ``settings``. Raises ``ConfigError`` when an Azure dialect
    has no URL, or one without the query parameters the dialect needs (``AZURE_QUERY``)."""
    dialect = settings.realtime.dialect
    beta = dialect in (RealtimeDialect.openai_beta, RealtimeDialect.azure_beta)
    key = settings.realtime.api_key.get_secret_value() if settings.realtime.api_key else "local"
    model = settings.realtime.model
    if dialect in AZURE_QUERY:
        example = AZURE_EXAMPLE[dialect]
        if not settings.realtime.url:
            raise ConfigError(
                f"SWITCHBOARD_REALTIME_URL must name the Azure resource, e.g. {example}"
            )
        query = parse_qs(urlsplit(settings.realtime.url).query)
        missing = [name for name in AZURE_QUERY[dialect] if not query.get(name)]
        if missing:
            raise ConfigError(
                f"SWITCHBOARD_REALTIME_URL lacks {', '.join(missing)} for {dialect.value}, "
                f"e.g. {example}"
            )
        return Endpoint(url=settings.realtime.url, headers={"api-key": key}, beta=beta)
    if settings.realtime.url:
        url = settings.realtime.url
    elif settings.uses_local_engine:
        url = f"ws://{settings.engine_host}:{settings.engine_port}/v1/realtime"
        url += "?" + urlencode({"model": model})
    else:
        url = OPENAI_REALTIME_URL + "?" + urlencode({"model": model})
    headers = {"Authorization": f"Bearer {key}"}
    if beta:
        headers["OpenAI-Beta"] = "realtime=v1"
    return Endpoint(url=url, headers=headers, beta=beta)


def _turn_detection(flow: Flow, beta: bool) -> dict[str, Any]:
    vad = flow.vad
    td: dict[str, Any] = {
        "type": "server_vad",
        "threshold": vad.threshold,
        "prefix_padding_ms": vad.prefix_padding_ms,
        "silence_duration_ms": vad.silence_duration_ms,
        "create_response": vad.create_response,
        "interrupt_response": vad.interrupt_response,
    }
    if vad.idle_timeout_ms is not None and not beta:
        td["idle_timeout_ms"] = vad.idle_timeout_ms
    return td


def session_config(
    flow: Flow, tools: list[dict[str, Any]], *, beta: bool, instructions: str | None = None
) -> dict[str, Any]:
    """The ``session`` object of ``session.update`` for ``flow``: μ-law in and out, the
    flow's ``server_vad``, input transcription, voice, instructions and tools."""
    text = instructions if instructions is not None else flow.instructions
    transcription: dict[str, Any] | None = None
    if flow.transcription is not None:
        transcription = flow.transcription.model_dump(exclude_none=True)
    if beta:
        session: dict[str, Any] = {
            "modalities": ["audio", "text"],
            "instructions": text,
            "voice": flow.voice,
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "turn_detection": _turn_detection(flow, beta=True),
            "tools": tools,
            "tool_choice": "auto" if tools else "none",
            "max_response_output_tokens": flow.max_output_tokens,
        }
        if transcription is not None:
            session["input_audio_transcription"] = transcription
        if flow.temperature is not None:
            session["temperature"] = flow.temperature
        return session
    audio_input: dict[str, Any] = {
        "format": GA_PCMU,
        "turn_detection": _turn_detection(flow, beta=False),
    }
    if transcription is not None:
        audio_input["transcription"] = transcription
    return {
        "type": "realtime",
        "instructions": text,
        "output_modalities": ["audio"],
        "audio": {"input": audio_input, "output": {"format": GA_PCMU, "voice": flow.voice}},
        "tools": tools,
        "tool_choice": "auto" if tools else "none",
        "max_output_tokens": flow.max_output_tokens,
    }


#: The transcription prompt of a listen-only session: digits, said one by one.
DIGITS_PROMPT = "Digits said one by one, e.g. 4 2 0 7, oh for zero."
#: A listen-only session never answers; its instructions say so in case one is asked for.
LISTENER_INSTRUCTIONS = "Transcribe only. Never answer, never speak."


def listener_config(flow: Flow, *, beta: bool) -> dict[str, Any]:
    """The ``session`` of a listen-only session (spoken keypad input, ``app.call.listener``):
    the flow's ``server_vad`` with ``create_response`` and ``interrupt_response`` off, input
    transcription with ``DIGITS_PROMPT``, no tools. It hears the caller only while a
    ``collect_digits`` capture runs; no response is ever asked of it, so what the caller
    says there reaches no model's conversation but this one's."""
    vad = flow.vad.model_copy(update={"create_response": False, "interrupt_response": False})
    heard = (flow.transcription or TranscriptionSettings()).model_copy(
        update={"prompt": DIGITS_PROMPT}
    )
    quiet = flow.model_copy(
        update={"vad": vad, "transcription": heard, "instructions": LISTENER_INSTRUCTIONS}
    )
    return session_config(quiet, [], beta=beta)
