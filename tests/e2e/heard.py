"""The barge-in check: the truncate sent to the model matches what the caller heard.

Measured against the carrier simulator's own playback record (switchboard_sim/playback.py: the
ms of each item played, to the sample), never against a timing tolerance a loaded
machine could eat. The server cuts the item when the engine reports the caller's speech;
the simulator learns of it only when the ``clear`` arrives, a little later (later still
on a busy CPU). So the truncate must lie between

* what the caller had heard at the earliest moment the engine could have detected the
  speech, less the 1 ms the server rounds down to: ``speech_started`` comes once
  ``MIN_SPEECH_MS`` of speech past the onset has been received, and the simulator sends
  each 20 ms frame no earlier than its place on the call timeline, so never before
  ``onset + MIN_SPEECH_MS - FRAME_MS``; and
* what the caller had heard when the ``clear`` arrived, plus one frame: the server
  cannot see when its first audio reached the carrier, so it may run that much ahead.

Both ends only move apart when the machine is slow; a truncate to the audio sent (all of
it, seconds ahead) or to the last echoed mark (up to 100 ms behind) falls outside.

Stacks checked this way run with :data:`NEVER_STALLS`: the server takes a mark echo more
than ``playback_stall_tolerance_ms`` (60 ms) late for a playback stall and re-anchors its
playhead on it. The simulated carrier's playback never stalls (it follows the clock), but
on a loaded machine its echoes can leave that late, and the server would then truncate
short by the delay: right for a real stall, wrong here. Stall handling has its own tests
with a fake clock.
"""

from __future__ import annotations

from typing import Any

from app.audio import FRAME_MS
from switchboard_engine.vad import MIN_SPEECH_MS
from switchboard_sim.calls import SimulatedCallResult

#: ``make_stack`` settings for a barge-in measured by :func:`assert_truncated_to_heard`.
NEVER_STALLS: dict[str, Any] = {"playback_stall_tolerance_ms": 2000}


def speech_detectable_from_ms(session: Any) -> float:
    """Call-timeline ms before which the engine cannot have reported the first speech."""
    started = next(
        e
        for e in session.events_sent
        if isinstance(e, dict) and e.get("type") == "input_audio_buffer.speech_started"
    )
    start = int(started["audio_start_ms"])  # onset - prefix padding, clamped at 0
    onset = start + session.config.turn_detection.prefix_padding_ms if start > 0 else 0
    return float(onset + MIN_SPEECH_MS - FRAME_MS)


def assert_truncated_to_heard(result: SimulatedCallResult, session: Any) -> dict[str, Any]:
    """The one truncate of the call lies in the window above; returns it."""
    (clear,) = result.clears
    (trunc,) = session.truncations
    item = trunc["item_id"]
    end_ms = trunc["audio_end_ms"]
    heard_at_clear = clear.played_ms_by_item.get(item, 0.0)
    heard_first = result.played_ms(item, until_ms=speech_detectable_from_ms(session))
    window = (heard_first - 1.0, heard_at_clear + FRAME_MS)
    assert window[0] <= end_ms <= window[1], (trunc, window, result.played_spans)
    return dict(trunc)
