"""Session lifecycle: a closed session keeps none of its per-session VAD or audio, and the
engine keeps a bounded number of closed sessions (RSS over many sessions is measured in
``python -m bench engine``, section 4)."""

from __future__ import annotations

import asyncio

from switchboard_engine.server import SESSIONS_KEPT, EngineServer
from tests.engine.conftest import ga_session, open_client, silence


async def _wait_closed(engine: EngineServer) -> None:
    """Until every connection the engine serves has ended (its session closed)."""
    async with asyncio.timeout(30):
        await engine.idle.wait()


async def test_a_closed_session_releases_its_vad(engine: EngineServer) -> None:
    client = await open_client(engine)
    await client.send({"type": "session.update", "session": ga_session()})
    await client.recv_until("session.updated")
    await client.append(silence(400))
    # Events are handled in order: once the clear is answered, the audio was scored.
    await client.send({"type": "input_audio_buffer.clear"})
    await client.recv_until("input_audio_buffer.cleared")
    assert engine.sessions[-1].holds_vad
    await client.ws.close()
    await _wait_closed(engine)
    session = engine.sessions[-1]
    assert session.closed and not session.holds_vad
    assert session.events_sent  # the record stays for introspection


async def test_the_engine_keeps_a_bounded_number_of_closed_sessions(
    engine: EngineServer,
) -> None:
    total = SESSIONS_KEPT + 8
    for _ in range(total):
        client = await open_client(engine)
        await client.send({"type": "session.update", "session": ga_session()})
        await client.recv_until("session.updated")
        await client.append(silence(100))
        await client.ws.close()
    await _wait_closed(engine)
    assert len(engine.sessions) == SESSIONS_KEPT
    assert all(s.closed and not s.holds_vad for s in engine.sessions)
