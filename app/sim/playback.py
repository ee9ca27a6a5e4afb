"""Clock-driven model of Twilio's outbound playback on a `<Connect><Stream>` call (no I/O).

Source: protocols.md §2 "Media Streams messages". Toward Twilio a server sends
``media`` (any size, queued and played in order, no pacing needed), ``mark``
(echoed back once the audio queued before it has played) and ``clear`` (drops the
queued audio; Twilio then echoes *all* pending marks at once, so an echoed mark
does not prove the audio was heard).

The model plays the queue at real time: 8 kHz μ-law is 8 bytes per ms. Time is
given by the caller as ``now_ms`` (milliseconds on the call timeline, monotonic),
so tests drive it with a fake clock. Internally the play position is kept in
samples (1 sample = 1 byte = 1/8 ms) so long calls accumulate no rounding drift.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from app.audio import BYTES_PER_MS, ULAW_SILENCE

#: Default cap on queued, not yet played agent audio: 5 minutes at 8 kHz μ-law (bytes).
DEFAULT_MAX_QUEUED_BYTES = 5 * 60 * 1000 * BYTES_PER_MS
#: Default cap on marks waiting in the queue.
DEFAULT_MAX_PENDING_MARKS = 10_000


@dataclass(frozen=True, slots=True)
class ClearRecord:
    """One ``clear`` received: when (``at_ms``, call timeline) and how much had played.

    ``played_bytes_total`` counts μ-law bytes (8 per ms) of agent audio played
    since the call started, up to the clear.
    """

    at_ms: float
    played_bytes_total: int


@dataclass(slots=True)
class PlaybackStep:
    """What happened during one :meth:`Playback.advance`.

    ``marks``: names whose preceding audio has fully played, in queue order (to be
    echoed). ``audio``: the μ-law bytes played in this step (contiguous on the
    timeline, starting at ``audio_start_ms``; empty and ``None`` if nothing played).
    """

    marks: list[str] = field(default_factory=list)
    audio: bytes = b""
    audio_start_ms: float | None = None


class PlaybackOverflow(Exception):
    """More agent audio or marks queued than the configured bound."""


class Playback:
    """Twilio's outbound playback queue for one call.

    Feed it in arrival order with :meth:`push_media` / :meth:`push_mark`, call
    :meth:`advance` as time passes, and :meth:`clear` on a ``clear`` message.
    Every method takes ``now_ms``, the current time on the call timeline in ms;
    it must never go backwards.
    """

    def __init__(
        self,
        *,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_pending_marks: int = DEFAULT_MAX_PENDING_MARKS,
        record: bool = True,
    ) -> None:
        """``max_queued_bytes``: bound on unplayed audio (bytes, 8 per ms);
        ``max_pending_marks``: bound on queued marks; ``record``: keep the played
        audio on a timeline with silence (0xFF) where nothing played (see :meth:`recording`).
        """
        self._queue: deque[bytes | str] = deque()
        self._head_offset = 0  # bytes of the head audio item already played
        self._queued_bytes = 0
        self._queued_marks = 0
        self._max_queued_bytes = max_queued_bytes
        self._max_pending_marks = max_pending_marks
        self._clock = 0  # play position, in samples (bytes) since t=0
        self._playing = False
        self._burst_start: int | None = None
        self._last_audio_end: int | None = None
        self._played_total = 0
        self._record = record
        self._recording = bytearray()
        self.clears: list[ClearRecord] = []
        """Every clear received, in order."""

    # ------------------------------------------------------------------ state
    @property
    def played_bytes_total(self) -> int:
        """μ-law bytes of agent audio played so far (8 per ms)."""
        return self._played_total

    @property
    def queued_bytes(self) -> int:
        """μ-law bytes queued and not yet played."""
        return self._queued_bytes - self._head_offset

    @property
    def pending_marks(self) -> list[str]:
        """Names of marks still waiting for their preceding audio, in order."""
        return [item for item in self._queue if isinstance(item, str)]

    @property
    def is_playing(self) -> bool:
        """True while agent audio is queued (as of the last call)."""
        return self._playing

    @property
    def burst_start_ms(self) -> float | None:
        """Start (ms) of the current or last stretch of uninterrupted agent audio."""
        return None if self._burst_start is None else self._burst_start / BYTES_PER_MS

    @property
    def last_audio_end_ms(self) -> float | None:
        """When (ms) agent audio last ran out or was cleared; None if never / still playing."""
        if self._playing or self._last_audio_end is None:
            return None
        return self._last_audio_end / BYTES_PER_MS

    # ----------------------------------------------------------------- inputs
    def push_media(self, payload: bytes, now_ms: float) -> None:
        """Queue outbound μ-law audio received at ``now_ms``.

        Audio arriving while nothing is queued starts playing at ``now_ms``.
        Raises :class:`PlaybackOverflow` beyond ``max_queued_bytes``.
        """
        if not payload:
            return
        if self.queued_bytes + len(payload) > self._max_queued_bytes:
            raise PlaybackOverflow(
                f"agent audio queue over {self._max_queued_bytes} bytes "
                f"({self._max_queued_bytes / BYTES_PER_MS:.0f} ms)"
            )
        self._pin_idle_clock(now_ms)
        self._queue.append(bytes(payload))
        self._queued_bytes += len(payload)

    def push_mark(self, name: str, now_ms: float) -> None:
        """Queue a mark received at ``now_ms``; reached once the audio before it has played."""
        if self._queued_marks >= self._max_pending_marks:
            raise PlaybackOverflow(f"more than {self._max_pending_marks} pending marks")
        self._pin_idle_clock(now_ms)
        self._queue.append(name)
        self._queued_marks += 1

    def _pin_idle_clock(self, now_ms: float) -> None:
        # With no audio queued nothing plays, so the play position follows the clock.
        if self.queued_bytes == 0:
            self._clock = max(self._clock, _to_samples(now_ms))

    # ------------------------------------------------------------------- time
    def advance(self, now_ms: float) -> PlaybackStep:
        """Play queued audio up to ``now_ms`` at 8 bytes per ms.

        Returns the marks reached (their preceding audio fully played) and the audio played.
        """
        target = max(_to_samples(now_ms), self._clock)
        step = PlaybackStep()
        played = bytearray()
        while self._queue:
            head = self._queue[0]
            if isinstance(head, str):
                self._queue.popleft()
                self._queued_marks -= 1
                step.marks.append(head)
                continue
            if self._clock >= target:
                break
            if not self._playing:
                self._playing = True
                self._burst_start = self._clock
            if step.audio_start_ms is None:
                step.audio_start_ms = self._clock / BYTES_PER_MS
                if self._record and len(self._recording) < self._clock:
                    self._recording.extend(ULAW_SILENCE * (self._clock - len(self._recording)))
            n = min(len(head) - self._head_offset, target - self._clock)
            played += head[self._head_offset : self._head_offset + n]
            self._head_offset += n
            self._clock += n
            if self._head_offset == len(head):
                self._queue.popleft()
                self._queued_bytes -= len(head)
                self._head_offset = 0
        if played:
            self._played_total += len(played)
            if self._record:
                self._recording += played
            step.audio = bytes(played)
        if self.queued_bytes == 0:
            if self._playing:
                self._playing = False
                self._last_audio_end = self._clock
            self._clock = target
        return step

    def clear(self, now_ms: float) -> list[str]:
        """Handle a ``clear`` at ``now_ms``: play up to now, drop the queued audio.

        Returns every mark to echo at once: those reached while playing up to
        ``now_ms`` and then all still pending (Twilio echoes them on clear).
        Appends a :class:`ClearRecord` to :attr:`clears`.
        """
        marks = self.advance(now_ms).marks
        marks.extend(self.pending_marks)
        self._queue.clear()
        self._queued_bytes = 0
        self._queued_marks = 0
        self._head_offset = 0
        if self._playing:
            self._playing = False
            self._last_audio_end = self._clock
        self.clears.append(ClearRecord(at_ms=now_ms, played_bytes_total=self._played_total))
        return marks

    # ------------------------------------------------------------- recording
    def recording(self, until_ms: float | None = None) -> bytes:
        """The agent audio as heard, on the call timeline from t=0 (8 kHz μ-law).

        Silence (0xFF) fills the stretches where nothing played; ``until_ms`` pads
        the end with silence up to that time. Empty if ``record=False``.
        """
        if not self._record:
            return b""
        out = bytes(self._recording)
        if until_ms is not None:
            end = _to_samples(until_ms)
            if end > len(out):
                out += ULAW_SILENCE * (end - len(out))
        return out


def _to_samples(ms: float) -> int:
    return int(ms * BYTES_PER_MS)
