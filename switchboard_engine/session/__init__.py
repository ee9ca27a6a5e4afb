"""Sans-I/O Realtime session: client event dicts in, server event dicts (and actions) out.

One :class:`EngineSession` per WebSocket connection. It owns the session config, the
conversation, the input audio buffer + server VAD and the active response. It never
awaits: work that needs I/O is returned as an action (:class:`Transcribe`,
:class:`Generate`) which the connection layer (``switchboard_engine.server``) performs, feeding
results back through :meth:`EngineSession.transcribed` and the response step methods.

Wire names and shapes follow docs/protocols.md §1 ("Events", "Session", "Response object
and function calls", "Barge-in over a WebSocket"); the GA names are used internally and
renamed for the beta dialect on the way out. Times are milliseconds on the input audio
timeline (8 kHz μ-law, 8 bytes per ms), never wall-clock.

The reply content comes from a responder (``switchboard_engine.responder``): Whisper
transcription + understanding by default, or a SCRIPTED scenario.

One concept per module, :class:`EngineSession` (``facade``) in front of them:
``events`` (event dicts, dialect, ids, client errors), ``config`` (settings and
``session.update``), ``items`` (conversation data), ``actions`` (work handed to the
connection), ``rendering`` (JSON shapes per dialect), ``conversation``
(``conversation.item.*``), ``audio_buffer`` (``input_audio_buffer.*``, server VAD, idle
timeout) and ``responses`` (``response.*`` and the steps of producing one).
"""

from __future__ import annotations

from switchboard_engine.session.actions import Action, Generate, Speculate, Transcribe
from switchboard_engine.session.audio_buffer import IDLE_KEEP_MS, MAX_TURN_AUDIO_MS, MIN_COMMIT_MS
from switchboard_engine.session.config import SESSION_TTL_S, SessionConfig, TurnDetection
from switchboard_engine.session.events import RECORD_LIMIT, ClientError, Dialect, Event
from switchboard_engine.session.facade import EngineSession
from switchboard_engine.session.items import ActiveResponse, Item
from switchboard_engine.session.responses import OUTPUT_CHUNK_MS, split_text

__all__ = [
    "IDLE_KEEP_MS",
    "MAX_TURN_AUDIO_MS",
    "MIN_COMMIT_MS",
    "OUTPUT_CHUNK_MS",
    "RECORD_LIMIT",
    "SESSION_TTL_S",
    "Action",
    "ActiveResponse",
    "ClientError",
    "Dialect",
    "EngineSession",
    "Event",
    "Generate",
    "Item",
    "SessionConfig",
    "Speculate",
    "Transcribe",
    "TurnDetection",
    "split_text",
]
