"""What the caller has heard: assistant audio as sent to the carrier, marks and the playhead.

Playback accounting (docs/protocols.md §1 "Barge-in over a WebSocket", §2 "Media Streams
messages"): after an outbound audio chunk a ``mark`` named ``<item_id>:<n>`` is sent, once
at least ``MARK_EVERY_MS`` of audio went out since the previous one (so every chunk of
100 ms or more, every fifth of 20 ms chunks), and after the item's last chunk. When Twilio
echoes it, the audio before it has played. The playhead is estimated from the send log:
the carrier plays what it was sent in order and in real time, and pauses when its queue
runs dry, so each chunk starts no earlier than it was sent (audio sent at real-time pace
makes such pauses common). Echoes correct the estimate only when they prove it wrong (see
``PlaybackItem.on_echo``): they arrive late by the network delay. So ``heard_ms`` is
accurate to well within one 20 ms frame even with 100 ms between marks, and small chunks
do not cost one mark and one echo each.

Items play one after another: an item whose audio arrives while an earlier one is still
queued at the carrier starts when that one ends (``Playback.timeline``), so on barge-in
each item can be told apart: played in full, partly heard (truncate), or never heard at
all (delete).

All sizes are bytes of G.711 μ-law at 8 kHz (8 bytes per ms); times are ms on the
session's clock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from app.audio import BYTES_PER_MS
from app.carrier.twilio import encode_clear, encode_mark, encode_media

#: Audio (ms) sent between two marks at most, unless the item ends sooner.
MARK_EVERY_MS = 100
_MARK_EVERY_BYTES = MARK_EVERY_MS * BYTES_PER_MS


@dataclass(slots=True)
class PlaybackItem:
    """One assistant item's audio as sent to the carrier (all ms at 8 kHz μ-law)."""

    item_id: str
    response_id: str
    generated_bytes: int = 0  # every delta received, including ones dropped after barge-in
    sent_bytes: int = 0  # what was forwarded to the carrier
    marked_bytes: int = 0  # position of the last mark sent after it
    play_start_ms: float | None = None  # clock time its first byte starts playing (estimate)
    offset_ms: int = 0  # call-relative time playback started
    play_end_ms: float = 0.0  # clock time all audio sent so far has played (estimate)
    echoed_ms: float = 0.0  # audio proven played: the furthest echoed mark
    audio_done: bool = False
    transcript: str | None = None
    interrupted: bool = False
    heard_final_ms: float | None = None
    recorded: bool = False

    @property
    def sent_ms(self) -> float:
        return self.sent_bytes / BYTES_PER_MS

    @property
    def generated_ms(self) -> float:
        return self.generated_bytes / BYTES_PER_MS

    def heard_ms(self, now: float) -> float:
        """Estimated ms of this item the caller has heard at clock time ``now``."""
        if self.heard_final_ms is not None:
            return self.heard_final_ms
        if self.sent_bytes == 0 or self.play_start_ms is None:
            return 0.0
        sent_ms = self.sent_ms
        queued = self.play_end_ms - now  # sent audio still waiting to play
        estimate = sent_ms - queued if queued > 0 else sent_ms
        return max(0.0, min(sent_ms, max(self.echoed_ms, estimate)))

    def sent_chunk(self, ms: float, now: float) -> None:
        """A chunk of ``ms`` went to the carrier at ``now``: it plays after what is queued,
        and not before it arrives (the carrier's queue may have run dry)."""
        end = self.play_end_ms
        self.play_end_ms = (end if end > now else now) + ms

    def on_echo(self, cum_ms: float, now: float, stall_tolerance_ms: float) -> None:
        """A mark at ``cum_ms`` came back at ``now``.

        Echoes arrive late by the carrier's network latency (and Twilio's own timing), so
        re-anchoring on every echo would bias the playhead low by that delay. The estimate
        from the send log stands unless an echo proves it wrong: the echo is ahead of it
        (playback started sooner than assumed), or more than ``stall_tolerance_ms`` behind
        it (playback stalled for a reason the send log cannot show, e.g. the carrier's own
        network); then what is left plays from ``now``. Pauses because audio came slower
        than real time need no echo: ``sent_chunk`` already accounts for them.
        """
        self.echoed_ms = max(self.echoed_ms, cum_ms)
        predicted = self.heard_ms(now)
        if cum_ms > predicted or predicted - cum_ms > stall_tolerance_ms:
            self.play_end_ms = now + (self.sent_ms - cum_ms)  # the rest plays from now

    def fully_played(self) -> bool:
        return self.audio_done and self.echoed_ms >= self.sent_ms

    def started_by(self, now: float) -> bool:
        """Whether its first audio has begun playing by ``now`` (not still queued behind)."""
        return self.play_start_ms is not None and self.play_start_ms <= now


def cut_text(text: str, fraction: float) -> str:
    """The first ``fraction`` (0..1) of ``text``'s words: what a listener heard of it."""
    words = text.split()
    keep = max(0, min(len(words), round(len(words) * fraction)))
    return " ".join(words[:keep])


class Playback:
    """The assistant items of one call, the marks in flight and the playback timeline.

    ``send`` is the per-chunk hot path: it builds the carrier's ``media`` message and, when
    due, a ``mark``. ``clear`` forgets every mark (Twilio echoes them all after ``clear``,
    which proves nothing).
    """

    __slots__ = ("_seq", "items", "marks", "playing", "stream_sid", "t0", "timeline")

    def __init__(self, stream_sid: str, t0: float) -> None:
        self.stream_sid = stream_sid
        self.t0 = t0
        self.items: dict[str, PlaybackItem] = {}
        #: Items in the order their audio went out (and so plays); interrupted ones stay.
        self.timeline: list[PlaybackItem] = []
        self.playing: PlaybackItem | None = None  # the item whose audio went out last
        self.marks: dict[str, tuple[PlaybackItem, float]] = {}
        self._seq = itertools.count(1)

    def item(self, item_id: str, response_id: str) -> PlaybackItem:
        """The item ``item_id``, created on first sight."""
        item = self.items.get(item_id)
        if item is None:
            item = self.items[item_id] = PlaybackItem(item_id=item_id, response_id=response_id)
        return item

    def start(self, item: PlaybackItem, now: float) -> None:
        """``item``'s first audio goes out at ``now``: place it on the timeline, after the
        previous item's audio unless that was cleared."""
        prev = self.playing
        start = now
        if (
            prev is not None
            and prev is not item
            and prev.play_start_ms is not None
            and not prev.interrupted
        ):
            start = max(now, prev.play_end_ms)
        item.play_start_ms = start
        item.play_end_ms = start
        item.offset_ms = int(start - self.t0)
        self.playing = item
        self.timeline.append(item)
        if len(self.timeline) > 64:  # only the last few can still be playing
            del self.timeline[:32]

    def send(self, item: PlaybackItem, delta_b64: str, size: int, now: float) -> tuple[str, ...]:
        """One chunk of ``size`` bytes (base64 ``delta_b64``) goes to the carrier at ``now``:
        ``(media,)`` or ``(media, mark)``."""
        item.sent_bytes += size
        item.sent_chunk(size / BYTES_PER_MS, now)
        media = encode_media(self.stream_sid, delta_b64)
        if item.sent_bytes - item.marked_bytes < _MARK_EVERY_BYTES:
            return (media,)
        return media, self.mark(item)

    def mark(self, item: PlaybackItem) -> str:
        """A mark after everything sent of ``item`` so far (the carrier message)."""
        item.marked_bytes = item.sent_bytes
        name = f"{item.item_id}:{next(self._seq)}"
        self.marks[name] = (item, item.sent_bytes / BYTES_PER_MS)
        return encode_mark(self.stream_sid, name)

    def mark_tail(self, item: PlaybackItem) -> str | None:
        """``item`` has no more audio: a mark after its unmarked tail, so its end is seen."""
        if item.sent_bytes > item.marked_bytes and not item.interrupted:
            return self.mark(item)
        return None

    def on_echo(self, name: str, now: float, stall_tolerance_ms: float) -> PlaybackItem | None:
        """Twilio echoed mark ``name``: the item it belongs to, or None for a stale one."""
        entry = self.marks.pop(name, None)
        if entry is None:
            return None
        item, cum_ms = entry
        item.on_echo(cum_ms, now, stall_tolerance_ms)
        return item

    def clear(self) -> str:
        """The carrier's ``clear`` message; every mark in flight is forgotten."""
        self.marks.clear()
        return encode_clear(self.stream_sid)

    def unplayed_ms(self, now: float) -> int:
        """Estimated ms of sent audio the carrier has not played yet (items play in order)."""
        item = self.playing
        if item is None or item.interrupted or item.play_start_ms is None:
            return 0
        return max(0, int(item.play_end_ms - now))

    def unheard(self, now: float) -> list[PlaybackItem]:
        """Items on the timeline with sent audio not all played by ``now``, in play order."""
        return [
            i
            for i in self.timeline
            if not i.interrupted and not i.fully_played() and i.heard_ms(now) < i.sent_ms
        ]

    def overdue_ms(self, now: float) -> int:
        """How late (ms) the most overdue mark echo is: the audio before the mark should
        have played by its estimated time. 0 when every mark is on time."""
        worst = 0.0
        for item, cum_ms in self.marks.values():
            due = item.play_end_ms - (item.sent_ms - cum_ms)
            if now - due > worst:
                worst = now - due
        return int(worst)
