"""The call session's timer names, constants and limits (``SessionLimits``, from
``Settings`` via ``session_limits``)."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings

FILLER_TIMER = "filler"
DTMF_TIMER = "dtmf"
KEYPAD_TIMER = "keypad"
ACTION_TIMER = "call_action"
DEAD_AIR_TIMER = "dead_air"
RECONNECT_TIMER = "reconnect"
ROLLOVER_TIMER = "rollover"
RESPONSE_RETRY_TIMER = "response_retry"
#: A refused-as-busy response.create is retried after this long (ms) when nothing else
#: tells the session the active response ended.
RESPONSE_RETRY_MS = 2000
#: How often (ms) a due rollover looks again for a quiet moment.
ROLLOVER_RETRY_MS = 500


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """The session's timeouts and bounds (ms unless named otherwise); from ``Settings``."""

    call_action_grace_ms: int = 10_000
    playback_stall_tolerance_ms: int = 60
    dtmf_gap_ms: int = 1500
    #: 20 ms frames of caller audio kept while no Realtime session takes them.
    inbound_buffer_frames: int = 100
    #: Longest silence a fault may cause before the fallback runs.
    dead_air_max_ms: int = 5000
    #: Time allowed for reconnecting after a drop, from the drop (the fallback runs after).
    reconnect_budget_ms: int = 4000
    reconnect_backoff_ms: tuple[int, ...] = (0, 250, 500, 1000)
    #: Open a new Realtime session after this long (0: never); the cap minus a margin.
    rollover_after_ms: int = 0
    #: ...and at the latest this long after the rollover was due, quiet or not.
    rollover_grace_ms: int = 60_000
    max_pending_responses: int = 8
    conversation_max_entries: int = 200


def session_limits(settings: Settings, beta: bool) -> SessionLimits:
    """The session's limits from ``Settings`` (``beta``: the 30-minute session cap)."""
    cap_min = (
        settings.realtime.session_cap_beta_min if beta else settings.realtime.session_cap_ga_min
    )
    rollover_ms = max(0, int((cap_min * 60 - settings.realtime.rollover_margin_s) * 1000))
    return SessionLimits(
        call_action_grace_ms=settings.call_action_grace_ms,
        playback_stall_tolerance_ms=settings.playback_stall_tolerance_ms,
        dtmf_gap_ms=settings.dtmf_gap_ms,
        inbound_buffer_frames=max(1, settings.inbound_buffer_ms // 20),
        dead_air_max_ms=settings.dead_air_max_ms,
        reconnect_budget_ms=int(settings.realtime.reconnect_s * 1000),
        reconnect_backoff_ms=tuple(settings.realtime.reconnect_backoff_ms),
        rollover_after_ms=rollover_ms,
        rollover_grace_ms=settings.realtime.rollover_grace_ms,
        max_pending_responses=settings.realtime.max_pending_responses,
        conversation_max_entries=settings.realtime.replay_max_items,
    )
