"""The media-plane listener: Twilio Media Streams WebSockets on their own port.

``switchboard serve`` runs it beside the HTTP server (FastAPI), in the same process and
event loop and with the same services; in production the reverse proxy routes
``/twilio/media`` on the public host to it (``deploy/nginx.conf``), and the TwiML's
``<Stream url>`` is ``Settings.media_stream_url``. Built on picows' public server API
(``ws_create_server``): the upgrade request is checked before the socket is accepted,
then each frame reaches the call's bridge through one callback.

Checks before the upgrade (RFC 6455 §4.2.2 allows refusing with any HTTP status):

- the path is the stream's (``/twilio/media``, or the path of ``media.public_url``), else 404;
- the service accepts calls (not draining), else 503;
- with ``validate_signatures`` and ``validate_ws_signature``, ``X-Twilio-Signature`` is
  Twilio's over the ``<Stream>`` URL (``app.carrier.twiml.valid_stream_upgrade``), else 403.

The one-time stream token in ``start.customParameters`` is then checked by the bridge
(close 1008 otherwise). The listener is shut down by the app's lifespan, after the live
calls drained: the HTTP server's shutdown never touches these sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from picows import (
    WSListener,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from app import metrics
from app.call.bridge import CallBridge
from app.call.links import READ_BUFFER_BYTES, WIRE_LOG, MediaStreamLink
from app.carrier.twiml import valid_stream_upgrade
from app.services import Services

log = logging.getLogger(__name__)

#: The stream's path on the public host (the reverse proxy routes it here).
MEDIA_PATH = "/twilio/media"


@dataclass(frozen=True)
class MediaBind:
    """Where the listener listens: ``host``:``port``, or an already bound ``sock``.
    ``reuse_port``: several processes share the port (``serve --workers N``,
    SO_REUSEPORT: the kernel spreads the connections over them)."""

    host: str
    port: int
    reuse_port: bool = False
    sock: socket.socket | None = None


def _refuse(status: int, text: str) -> WSUpgradeResponseWithListener:
    return WSUpgradeResponseWithListener(
        WSUpgradeResponse.create_error_response(status, text.encode()), None
    )


class MediaServer:
    """Accepts media streams and runs one ``CallBridge`` task per socket (it owns them)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self._paths = {MEDIA_PATH.encode(), urlsplit(settings.media_stream_url).path.encode()}
        self._server: asyncio.Server | None = None
        self._calls: dict[asyncio.Task[None], MediaStreamLink] = {}

    @property
    def port(self) -> int:
        """The port listened on (0 before ``start``)."""
        if self._server is None or not self._server.sockets:
            return 0
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, bind: MediaBind) -> None:
        """Listen. Raises ``OSError`` when the address cannot be bound."""
        settings = self.services.settings
        where: dict[str, Any] = (
            {"sock": bind.sock}
            if bind.sock is not None
            else {"host": bind.host, "port": bind.port, "reuse_port": bind.reuse_port or None}
        )
        self._server = await ws_create_server(
            self._on_upgrade,
            websocket_handshake_timeout=settings.media.handshake_timeout_ms / 1000,
            max_frame_size=settings.media.max_frame_bytes,
            logger_name=WIRE_LOG,
            read_buffer_init_size=READ_BUFFER_BYTES,
            **where,
        )
        log.info("media streams on port %d (%s)", self.port, settings.media_stream_url)

    def _on_upgrade(
        self, request: WSUpgradeRequest
    ) -> WSListener | WSUpgradeResponseWithListener | None:
        if request.path.split(b"?", 1)[0] not in self._paths:
            return None  # 404
        services = self.services
        settings = services.settings
        if not services.accepting:
            metrics.STREAM_REJECTED.labels("shutting down").inc()
            return _refuse(503, "shutting down")
        if settings.validate_signatures and settings.validate_ws_signature:
            signature = request.headers.get("X-Twilio-Signature")
            if not valid_stream_upgrade(services.signatures, settings.media_stream_url, signature):
                metrics.STREAM_REJECTED.labels("signature").inc()
                log.warning("media stream refused: bad or missing X-Twilio-Signature")
                return _refuse(403, "invalid X-Twilio-Signature")
        return MediaStreamLink(
            settings.carrier_send_queue_max,
            settings.carrier_max_message_bytes,
            self._open,
            close_timeout_s=settings.ws_close_timeout_ms / 1000,
        )

    def _open(self, link: MediaStreamLink) -> None:
        task = asyncio.create_task(self._run(link), name="media-stream")
        self._calls[task] = link
        task.add_done_callback(self._calls.pop)

    async def _run(self, link: MediaStreamLink) -> None:
        try:
            await CallBridge(self.services.call_deps, link).run()
        except Exception:  # run() handles call failures itself: this is a bug
            log.exception("media stream task failed")
        finally:
            link.abort()  # whatever the bridge left open

    def stop_accepting(self) -> None:
        """Stop listening (new streams are refused by the kernel from now on)."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening, drop the sockets still open and wait for their calls' tasks
        (after ``Services.drain``: normally none is left)."""
        self.stop_accepting()
        for link in list(self._calls.values()):
            link.abort()
        tasks = list(self._calls)
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.services.settings.call_close_timeout_ms / 1000):
                    await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                task.cancel()
        self._server = None
