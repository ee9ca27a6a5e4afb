"""The listen-only Realtime session that takes spoken keypad input (``collect_digits``
with the flow's ``spoken``).

While a spoken-input capture runs, the caller's audio goes here instead of to the agent's
Realtime session: a second session of the same endpoint, configured by
``app.realtime.dialect.listener_config`` (``server_vad`` that never creates or interrupts a
response, input transcription with a digits prompt, no tools, no instructions to follow).
No ``response.create`` is ever sent to it, so it only transcribes; each
``conversation.item.input_audio_transcription.completed`` transcript is handed to
``on_heard`` (the session feeds it to the capture) and nowhere else: not the transcript,
the logs or the agent's conversation. The socket is closed when the capture ends.

A listener that cannot connect (counted as a Realtime connect failure) or loses its socket
is logged, never with what was said; the capture goes on with the keypad and times out as
usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app import metrics
from app.call.links import REALTIME_CONNECT_ERRORS, RealtimeConnection, open_realtime
from app.errors import LinkStalled, RealtimeClosed, RealtimeCodecError
from app.realtime import codec as rtc
from app.realtime import events as ev
from app.realtime.codec import ClientEvents
from app.realtime.dialect import Endpoint, listener_config
from app.settings import Settings
from flows import Flow

log = logging.getLogger(__name__)


class SpokenInput:
    """One listen-only session (see the module doc); ``on_heard(transcript)`` per turn."""

    def __init__(
        self,
        endpoint: Endpoint,
        settings: Settings,
        flow: Flow,
        on_heard: Callable[[str], None],
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.flow = flow
        self.on_heard = on_heard
        self.client = ClientEvents(endpoint.beta)
        self.rt: RealtimeConnection | None = None
        self.closed = False

    async def run(self) -> None:
        """Connect and configure; then the socket's parser calls ``_on_message``. Returns
        at once if ``close`` came first; never raises for a socket failure."""
        try:
            rt = await open_realtime(self.endpoint, self.settings)
        except REALTIME_CONNECT_ERRORS as exc:
            metrics.REALTIME_CONNECT_FAILURES.inc()
            log.warning("spoken input unavailable: %s", type(exc).__name__)
            return
        if self.closed:
            await rt.close()
            return
        self.rt = rt
        rt.attach(self._on_message, self.settings.realtime.send_queue_max)
        self._send(self.client.session_update(listener_config(self.flow, beta=self.endpoint.beta)))

    def feed(self, payload_b64: str) -> None:
        """One 20 ms frame of the caller's μ-law (base64, as the carrier sent it); dropped
        while the socket is not open yet."""
        if self.rt is not None:
            self._send(ClientEvents.input_audio_append(payload_b64))

    async def close(self) -> None:
        """Close the socket (or keep ``run`` from opening one)."""
        self.closed = True
        rt, self.rt = self.rt, None
        if rt is not None:
            rt.detach()
            await rt.close()

    def _send(self, text: str) -> None:
        rt = self.rt
        if rt is None:
            return
        try:
            rt.send_now(text)
        except (RealtimeClosed, LinkStalled) as exc:
            log.warning("spoken input lost: %s", type(exc).__name__)
            self.rt = None
            rt.abort()

    def _on_message(self, data: bytes) -> None:
        try:
            event = rtc.decode(data)
        except RealtimeCodecError:
            metrics.MALFORMED.labels("realtime").inc()
            return
        if type(event) is ev.ConversationItemInputAudioTranscriptionCompleted:
            if event.transcript.strip():
                self.on_heard(event.transcript)
        elif type(event) is ev.Error:
            log.warning("spoken input: realtime error %s", event.code)
