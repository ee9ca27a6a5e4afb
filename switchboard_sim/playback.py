"""Clock-driven model of Twilio's outbound playback on a `<Connect><Stream>` call (no I/O).

Source: docs/protocols.md §2 "Media Streams messages". Toward Twilio a server sends
``media`` (any size, queued and played in order, no pacing needed), ``mark``
(echoed back once the audio queued before it has played) and ``clear`` (drops the
queued audio; Twilio then echoes *all* pending marks at once, so an echoed mark
does not prove the audio was heard).

The model plays the queue at real time: 8 kHz μ-law is 8 bytes per ms. Time is
given by the caller as ``now_ms`` (milliseconds on the call timeline, monotonic),
so tests drive it with a fake clock. Internally the play position is kept in
samples (1 sample = 1 byte = 1/8 ms) so long calls accumulate no rounding drift.

It also keeps the record a barge-in test measures against: which item each played
byte belonged to and when it played. Twilio knows nothing of items, but the audio
queued before a mark belongs to the mark's item (:func:`mark_item`: Switchboard
names its marks ``<item_id>:<n>``, app/call/session.py). :meth:`Playback.played_spans`
is the timeline of what was heard, item by item, and every ``clear`` keeps the ms
of each item played when it arrived (:class:`ClearRecord`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from app.audio import BYTES_PER_MS, ULAW_SILENCE

#: Default cap on queued, not yet played agent audio: 5 minutes at 8 kHz μ-law (bytes).
DEFAULT_MAX_QUEUED_BYTES = 5 * 60 * 1000 * BYTES_PER_MS
#: Default cap on marks waiting in the queue.
DEFAULT_MAX_PENDING_MARKS = 10_000
#: Default cap on the played-spans record (a span per mark at most, one per 100 ms of a
#: Switchboard call's audio: ~2.8 hours); later audio still plays, unrecorded.
DEFAULT_MAX_SPANS = 100_000
#: Default cap on distinct items counted; audio of items past it counts under None.
DEFAULT_MAX_ITEMS = 10_000


def mark_item(name: str) -> str:
    """The item a mark belongs to: its name up to the last ``:`` (Switchboard names its
    marks ``<item_id>:<n>``, app/call/session.py); a name without ``:`` is its own item."""
    head, sep, _ = name.rpartition(":")
    return head if sep else name


@dataclass(frozen=True, slots=True)
class PlayedSpan:
    """A stretch of one item's audio heard without a break: ``[start_ms, end_ms)`` on the
    call timeline. ``item``: the item of the mark queued after this audio
    (:func:`mark_item`); None when no mark came after it before a ``clear`` dropped the
    rest or the call ended."""

    item: str | None
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


def played_ms(spans: list[PlayedSpan], item: str | None, until_ms: float | None = None) -> float:
    """Ms of ``item``'s audio heard in ``spans`` (all of it, or up to ``until_ms`` on the
    call timeline)."""
    total = 0.0
    for span in spans:
        if span.item != item:
            continue
        end = span.end_ms if until_ms is None else min(span.end_ms, until_ms)
        if end > span.start_ms:
            total += end - span.start_ms
    return total


@dataclass(frozen=True, slots=True)
class ClearRecord:
    """One ``clear`` received: when (``at_ms``, call timeline) and how much had played.

    ``played_bytes_total`` counts μ-law bytes (8 per ms) of agent audio played
    since the call started, up to the clear. ``played_ms_by_item``: ms of each item's
    audio played since the call started, up to the clear, exactly (by the samples
    played, no frame rounding); the None key holds audio no mark came after.
    """

    at_ms: float
    played_bytes_total: int
    played_ms_by_item: dict[str | None, float] = field(default_factory=dict)


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


@dataclass(slots=True, eq=False)
class _Segment:
    """Audio queued between two marks; it belongs to the item of the mark after it,
    known once that mark arrives (``labelled``; a ``clear`` first labels it None)."""

    item: str | None = None
    labelled: bool = False
    played: int = 0  # bytes


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
        max_spans: int = DEFAULT_MAX_SPANS,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        """``max_queued_bytes``: bound on unplayed audio (bytes, 8 per ms);
        ``max_pending_marks``: bound on queued marks; ``record``: keep the played
        audio on a timeline with silence (0xFF) where nothing played (see :meth:`recording`);
        ``max_spans`` / ``max_items``: bounds on the per-item record (see :meth:`played_spans`).
        """
        self._queue: deque[tuple[bytes, _Segment] | str] = deque()
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
        self._open: _Segment | None = None  # the segment audio pushed now joins
        self._by_item: dict[str | None, int] = {}  # played bytes of labelled segments
        self._max_items = max_items
        self._spans: list[tuple[int, int, _Segment]] = []  # [start, end) samples
        self._max_spans = max_spans
        self.spans_dropped = 0
        """Played stretches not recorded because ``max_spans`` was reached."""
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
        if self._open is None:
            self._open = _Segment()
        self._queue.append((bytes(payload), self._open))
        self._queued_bytes += len(payload)

    def push_mark(self, name: str, now_ms: float) -> None:
        """Queue a mark received at ``now_ms``; reached once the audio before it has played.

        The audio queued since the previous mark belongs to this mark's item (:func:`mark_item`).
        """
        if self._queued_marks >= self._max_pending_marks:
            raise PlaybackOverflow(f"more than {self._max_pending_marks} pending marks")
        self._pin_idle_clock(now_ms)
        if self._open is not None:
            self._label(self._open, mark_item(name))
            self._open = None
        self._queue.append(name)
        self._queued_marks += 1

    def _label(self, seg: _Segment, item: str | None) -> None:
        if item not in self._by_item and len(self._by_item) >= self._max_items:
            item = None
        seg.item, seg.labelled = item, True
        if seg.played:
            self._by_item[item] = self._by_item.get(item, 0) + seg.played

    def _played(self, seg: _Segment, start: int, n: int) -> None:
        """``n`` bytes of ``seg`` played from sample ``start``: count and record them."""
        seg.played += n
        if seg.labelled:
            self._by_item[seg.item] = self._by_item.get(seg.item, 0) + n
        spans = self._spans
        if spans and spans[-1][2] is seg and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], start + n, seg)
        elif len(spans) < self._max_spans:
            spans.append((start, start + n, seg))
        else:
            self.spans_dropped += 1

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
            audio, seg = head
            n = min(len(audio) - self._head_offset, target - self._clock)
            played += audio[self._head_offset : self._head_offset + n]
            self._played(seg, self._clock, n)
            self._head_offset += n
            self._clock += n
            if self._head_offset == len(audio):
                self._queue.popleft()
                self._queued_bytes -= len(audio)
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
        Appends a :class:`ClearRecord` to :attr:`clears`. Audio played with no mark
        after it yet is counted as item None from now on.
        """
        marks = self.advance(now_ms).marks
        marks.extend(self.pending_marks)
        if self._open is not None:
            self._label(self._open, None)
            self._open = None
        self._queue.clear()
        self._queued_bytes = 0
        self._queued_marks = 0
        self._head_offset = 0
        if self._playing:
            self._playing = False
            self._last_audio_end = self._clock
        self.clears.append(
            ClearRecord(
                at_ms=now_ms,
                played_bytes_total=self._played_total,
                played_ms_by_item=self.played_ms_by_item(),
            )
        )
        return marks

    # ------------------------------------------------------------ per item
    def played_ms_by_item(self) -> dict[str | None, float]:
        """Ms of each item's audio played so far (None: audio no mark came after yet)."""
        out = {item: n / BYTES_PER_MS for item, n in self._by_item.items()}
        seg = self._open
        if seg is not None and seg.played:
            out[None] = out.get(None, 0.0) + seg.played / BYTES_PER_MS
        return out

    def played_spans(self) -> list[PlayedSpan]:
        """What was heard, item by item, on the call timeline (ms), in order.

        Adjacent stretches of the same item are merged. An item's label is the one its
        mark gave; audio with no mark after it (yet) is item None. At most
        ``max_spans`` stretches are kept (:attr:`spans_dropped` counts the rest).
        """
        out: list[PlayedSpan] = []
        for start, end, seg in self._spans:
            item = seg.item if seg.labelled else None
            a, b = start / BYTES_PER_MS, end / BYTES_PER_MS
            if out and out[-1].item == item and out[-1].end_ms == a:
                out[-1] = PlayedSpan(item, out[-1].start_ms, b)
            else:
                out.append(PlayedSpan(item, a, b))
        return out

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
