"""The input audio buffer: ``input_audio_buffer.*`` client events, server VAD turns,
commits into caller turns and the GA idle timeout.

Audio is 8 kHz μ-law (8 bytes per ms) on the session's input timeline: every ms value is
a position on it, never wall-clock. Only what a turn may still need is kept: the prefix
padding plus :data:`IDLE_KEEP_MS` while nobody speaks, at most :data:`MAX_TURN_AUDIO_MS`
while someone does. Protocols.md §1 "Events" and "Barge-in over a WebSocket".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from app.audio import BYTES_PER_MS
from switchboard_engine.session.actions import Action, Speculate, Transcribe
from switchboard_engine.session.config import SessionConfig, TurnDetection
from switchboard_engine.session.conversation import Conversation
from switchboard_engine.session.events import ClientError, Dialect, Wire
from switchboard_engine.session.items import Item
from switchboard_engine.session.responses import Responses
from switchboard_engine.vad import SpeechEnd, SpeechPause, SpeechScorer, SpeechStart, VadSegmenter

#: A manual commit needs at least this much buffered audio (ms), like the real service.
MIN_COMMIT_MS = 100
#: Input audio kept before speech when idle (ms beyond the prefix padding).
IDLE_KEEP_MS = 1000
#: Longest caller turn kept for transcription (ms); older audio is dropped.
MAX_TURN_AUDIO_MS = 15 * 60 * 1000


class InputAudioBuffer:
    """Caller audio in, ``input_audio_buffer.*`` events and caller turns out.

    Server VAD (``turn_detection`` set) finds speech start/stop and commits each turn;
    speech that starts while a response plays cancels it when ``interrupt_response``
    (barge-in). Without turn detection the client commits by hand.
    """

    def __init__(
        self,
        wire: Wire,
        conversation: Conversation,
        responses: Responses,
        scorer_factory: Callable[[], SpeechScorer],
    ) -> None:
        self.wire = wire
        self.conversation = conversation
        self.responses = responses
        self._scorer_factory = scorer_factory
        self._scorer: SpeechScorer | None = None
        self._segmenter: VadSegmenter | None = None
        self._buffer = bytearray()
        #: Bytes of input audio appended since the session started.
        self.timeline_bytes = 0
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0
        self._audio_turns = 0
        #: Caller turns the conversation held before the first audio: a replayed history
        #: (a client reconnecting after a dropped session), so SCRIPTED turns go on from it.
        self._turn_base: int | None = None
        self._idle_ref_ms = 0
        self._pause: tuple[str, int] | None = None

    @property
    def timeline_ms(self) -> int:
        """Milliseconds of input audio appended since the session started."""
        return self.timeline_bytes // BYTES_PER_MS

    def close(self) -> None:
        """Release what only a live session needs: the VAD (Silero holds ~9 MB of model
        state per instance) and the buffered input audio. Idempotent."""
        self._scorer = None
        self._segmenter = None
        self._buffer = bytearray()

    @property
    def holds_vad(self) -> bool:
        """True while this buffer keeps a VAD scorer."""
        return self._scorer is not None or self._segmenter is not None

    def configure(self, td: TurnDetection | None) -> None:
        """Apply (new) turn detection settings; ``None`` turns server VAD off."""
        if td is None:
            self._segmenter = None
            self._speech_item_id = None
            return
        silence = td.silence_duration_ms
        if td.type == "semantic_vad":
            silence = {"low": 1200, "medium": 800, "high": 400}.get(td.eagerness or "auto", 800)
        if self._segmenter is None:
            if self._scorer is None:
                self._scorer = self._scorer_factory()
            self._segmenter = VadSegmenter(self._scorer, td.threshold, silence)
        else:
            self._segmenter.threshold = td.threshold
            self._segmenter.silence_duration_ms = silence

    def response_ended(self, audio_ms: int) -> None:
        """A response with ``audio_ms`` of audio ended: the idle timeout counts from when
        that audio has played."""
        self._idle_ref_ms = max(self._idle_ref_ms, self.timeline_ms + audio_ms)

    # --- client events ------------------------------------------------------------------
    def append(self, event: dict[str, Any], config: SessionConfig) -> list[Action]:
        """``input_audio_buffer.append`` (base64 ``audio``)."""
        b64 = event.get("audio")
        if not isinstance(b64, str):
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'audio'.", "audio"
            )
        try:
            audio = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ClientError("invalid_value", f"Invalid base64 audio: {exc}", "audio") from exc
        if self._turn_base is None:
            self._turn_base = sum(
                1 for i in self.conversation.items if i.type == "message" and i.role == "user"
            )
        if self._segmenter is None and config.turn_detection is not None:
            self.configure(config.turn_detection)
        self._buffer += audio
        self.timeline_bytes += len(audio)
        actions: list[Action] = []
        td = config.turn_detection
        seg = self._segmenter
        if td is None or seg is None:
            self._cap_buffer(MAX_TURN_AUDIO_MS)
            return actions
        for vad_event in seg.feed(audio):
            if isinstance(vad_event, SpeechStart):
                actions += self._speech_started(vad_event, td)
            elif isinstance(vad_event, SpeechEnd):
                actions += self._speech_stopped(vad_event, td, config)
            elif isinstance(vad_event, SpeechPause) and self._speech_item_id is not None:
                self._pause = (self._speech_item_id, vad_event.end_ms)
                audio_so_far = self._slice(self._speech_start_ms, vad_event.at_ms)
                actions.append(Speculate(self._pause, audio_so_far, config.transcription_prompt))
        if not seg.in_speech:
            self._cap_buffer(td.prefix_padding_ms + IDLE_KEEP_MS)
            actions += self._check_idle(td, config)
        else:
            self._cap_buffer(MAX_TURN_AUDIO_MS)
        return actions

    def commit(self, event: dict[str, Any], config: SessionConfig) -> list[Action]:
        """``input_audio_buffer.commit``: the buffer becomes a caller turn (no response)."""
        ms = len(self._buffer) // BYTES_PER_MS
        if ms < MIN_COMMIT_MS:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms}.00ms of audio.",
            )
        audio = bytes(self._buffer)
        self._buffer.clear()
        item_id = self._speech_item_id or self.wire.new_id("item")
        self._speech_item_id = None
        self._pause = None
        if self._segmenter is not None:
            self._segmenter.reset_turn()
        return self._commit_audio(item_id, audio, False, config)

    def clear(self, event: dict[str, Any]) -> list[Action]:
        """``input_audio_buffer.clear``."""
        self._buffer.clear()
        self._speech_item_id = None
        self._pause = None
        if self._segmenter is not None:
            self._segmenter.reset_turn()
        return [self.wire.event("input_audio_buffer.cleared")]

    # --- the buffer on the timeline -----------------------------------------------------
    def _cap_buffer(self, keep_ms: int) -> None:
        excess = len(self._buffer) - keep_ms * BYTES_PER_MS
        if excess > 0:
            del self._buffer[:excess]

    def _slice(self, start_ms: int, end_ms: int) -> bytes:
        base = self.timeline_bytes - len(self._buffer)
        lo = max(0, start_ms * BYTES_PER_MS - base)
        hi = max(lo, end_ms * BYTES_PER_MS - base)
        return bytes(self._buffer[lo:hi])

    def _drop_until(self, ms: int) -> None:
        base = self.timeline_bytes - len(self._buffer)
        cut = max(0, ms * BYTES_PER_MS - base)
        del self._buffer[:cut]

    # --- turns ----------------------------------------------------------------------------
    def _speech_started(self, ev: SpeechStart, td: TurnDetection) -> list[Action]:
        start = max(0, ev.onset_ms - td.prefix_padding_ms)
        self._speech_start_ms = start
        self._speech_item_id = self.wire.new_id("item")
        actions: list[Action] = [
            self.wire.event(
                "input_audio_buffer.speech_started",
                audio_start_ms=start,
                item_id=self._speech_item_id,
            )
        ]
        active = self.responses.active
        if active is not None and td.interrupt_response:
            actions += self.responses.cancel(active, "turn_detected")
        return actions

    def _speech_stopped(
        self, ev: SpeechEnd, td: TurnDetection, config: SessionConfig
    ) -> list[Action]:
        item_id = self._speech_item_id or self.wire.new_id("item")
        self._speech_item_id = None
        actions: list[Action] = [
            self.wire.event(
                "input_audio_buffer.speech_stopped", audio_end_ms=ev.end_ms, item_id=item_id
            )
        ]
        audio = self._slice(self._speech_start_ms, ev.commit_ms)
        self._drop_until(ev.commit_ms)
        self._idle_ref_ms = ev.commit_ms
        speculation = self._pause if self._pause == (item_id, ev.end_ms) else None
        self._pause = None
        actions += self._commit_audio(item_id, audio, td.create_response, config, speculation)
        return actions

    def _commit_audio(
        self,
        item_id: str,
        audio: bytes,
        respond: bool,
        config: SessionConfig,
        speculation: tuple[str, int] | None = None,
    ) -> list[Action]:
        turn = (self._turn_base or 0) + self._audio_turns
        self._audio_turns += 1
        item = Item(
            id=item_id,
            type="message",
            role="user",
            content_type="input_audio",
            audio_ms=len(audio) // BYTES_PER_MS,
            turn_index=turn,
            show_transcript=config.transcription is not None,
        )
        previous = self.conversation.insert(item)
        actions: list[Action] = [
            self.wire.event(
                "input_audio_buffer.committed", previous_item_id=previous, item_id=item_id
            )
        ]
        actions += self.conversation.added(item, previous)
        actions.append(
            Transcribe(item_id, audio, turn, respond, speculation, config.transcription_prompt)
        )
        return actions

    def _check_idle(self, td: TurnDetection, config: SessionConfig) -> list[Action]:
        if (
            self.wire.dialect is not Dialect.ga
            or td.idle_timeout_ms is None
            or self.responses.active is not None
            or self.timeline_ms - self._idle_ref_ms < td.idle_timeout_ms
        ):
            return []
        start, end = self._idle_ref_ms, self.timeline_ms
        self._idle_ref_ms = end
        item_id = self.wire.new_id("item")
        actions: list[Action] = [
            self.wire.event(
                "input_audio_buffer.timeout_triggered",
                item_id=item_id,
                audio_start_ms=start,
                audio_end_ms=end,
            )
        ]
        item = Item(
            id=item_id,
            type="message",
            role="user",
            content_type="input_audio",
            audio_ms=end - start,
            idle_timeout=True,
            show_transcript=False,
        )
        self._buffer.clear()
        previous = self.conversation.insert(item)
        actions.append(
            self.wire.event(
                "input_audio_buffer.committed", previous_item_id=previous, item_id=item_id
            )
        )
        actions += self.conversation.added(item, previous)
        actions += self.responses.start({})
        return actions
