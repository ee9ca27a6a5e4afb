"""The media listener's checks before it accepts an upgrade (path, draining, the
X-Twilio-Signature over the <Stream> URL), on a real socket with real services, and the
<Stream> URL the settings give it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from app.call.media_server import MediaBind, MediaServer
from app.services import Services
from app.settings import Settings
from tests.conftest import REDIS_URL

AUTH_TOKEN = "media-listener-test-token"


def test_stream_url_follows_the_public_base_url_or_the_media_port() -> None:
    public = Settings(public_base_url="https://voice.example.com", media_port=9001)
    assert public.media_stream_url == "wss://voice.example.com/twilio/media"  # via the proxy
    local = Settings(public_base_url="http://127.0.0.1:8000", media_port=9001)
    assert local.media_stream_url == "ws://127.0.0.1:9001/twilio/media"  # no proxy
    given = Settings(
        public_base_url="https://voice.example.com",
        media_public_url="wss://media.example.com/stream",
    )
    assert given.media_stream_url == "wss://media.example.com/stream"


@pytest.fixture
async def listener(redis_prefix: str) -> AsyncIterator[tuple[MediaServer, str]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(
        env="test",
        public_base_url="http://127.0.0.1:8000",
        media_port=port,
        twilio_auth_token=AUTH_TOKEN,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        validate_ws_signature=True,
        log_json=False,
    )
    services = Services.build(settings)
    server = MediaServer(services)
    await server.start(MediaBind("127.0.0.1", port, sock=sock))
    assert server.port == port
    try:
        yield server, settings.media_stream_url
    finally:
        await server.close()
        await services.close()


async def _status(url: str, signature: str | None) -> int:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=5):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_the_upgrade_is_checked_before_it_is_accepted(
    listener: tuple[MediaServer, str],
) -> None:
    server, url = listener
    signed = server.services.signatures.sign(url, {})
    assert await _status(url, None) == 403
    assert await _status(url, "not-the-signature") == 403
    assert await _status(url.replace("/twilio/media", "/elsewhere"), signed) == 404
    assert await _status(url, signed) == 101
    server.services.accepting = False  # draining: new streams go elsewhere
    assert await _status(url, signed) == 503


async def test_a_media_port_in_use_fails_start_up_and_unwinds_what_started(
    redis_prefix: str,
) -> None:
    """The lifespan's exit stack: the media bind fails after the admin machinery, the
    reaper and the event consumers started; every task they started is gone after."""
    from app.api.main import create_app

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    settings = Settings(
        env="test",
        twilio_auth_token=AUTH_TOKEN,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        dialer_enabled=True,
        log_json=False,
    )
    app = create_app(settings, MediaBind("127.0.0.1", port))
    before = asyncio.all_tasks()
    try:
        with pytest.raises(OSError):
            async with app.router.lifespan_context(app):
                pass
    finally:
        taken.close()
    assert app.state.admin is not None and app.state.background is not None  # they ran
    left = [t.get_name() for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []
