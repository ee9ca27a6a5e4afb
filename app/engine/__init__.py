"""Local OpenAI-Realtime-compatible engine (``switchboard engine``).

Server VAD on the caller's audio, SCRIPTED transcripts and replies from a scenario file,
espeak-ng/flite TTS, GA and beta wire dialects (protocols.md §1).
"""

from app.engine.responder import Reply, ReplyRequest, Responder, ScriptedResponder
from app.engine.scenario import Scenario
from app.engine.server import EngineServer, run
from app.engine.session import Dialect, EngineSession
from app.engine.tts import Tts, synthesize

__all__ = [
    "Dialect",
    "EngineServer",
    "EngineSession",
    "Reply",
    "ReplyRequest",
    "Responder",
    "Scenario",
    "ScriptedResponder",
    "Tts",
    "run",
    "synthesize",
]
