"""One simulated call end to end, for the ``switchboard call`` command.

Starts the fake Twilio REST API (so the server can hang up / transfer; point the
server's ``SWITCHBOARD_TWILIO_API_BASE_URL`` at ``http://rest_host:rest_port``),
places an inbound call whose caller says the given WAVs in turn (docs/protocols.md §2),
saves what the caller heard as a 16-bit PCM WAV and stops the REST fake.
"""

from __future__ import annotations

from pathlib import Path

from app.audio import read_wav_as_ulaw, write_wav_from_ulaw
from switchboard_sim.calls import CallScript, SimulatedCallResult
from switchboard_sim.carrier import CarrierSimulator
from switchboard_sim.dial import TargetRule
from switchboard_sim.rest import TwilioRestFake


async def run_call(
    *,
    server_base_url: str,
    public_base_url: str,
    account_sid: str,
    auth_token: str,
    rest_host: str = "127.0.0.1",
    rest_port: int = 0,
    to: str = "+15005550001",
    from_: str = "+15005550006",
    wavs: list[Path],
    out: Path | None = None,
    dtmf: list[tuple[int, str]] | None = None,
    max_duration_s: float = 60,
    targets: dict[str, TargetRule] | None = None,
) -> SimulatedCallResult:
    """Place one call against the server at ``server_base_url`` and return what happened.

    ``wavs``: caller utterances (any PCM/μ-law WAV, converted to 8 kHz μ-law);
    ``dtmf``: ``(at_ms, digit)`` on the call timeline; ``out``: where to write the
    agent audio the caller heard (8 kHz 16-bit mono WAV, full call timeline);
    ``rest_port=0`` picks a free port for the REST fake; ``targets``: what each transfer
    target does when a warm transfer rings it (:mod:`switchboard_sim.dial`).
    """
    sim = CarrierSimulator(server_base_url, public_base_url, account_sid, auth_token)
    sim.targets.update(targets or {})
    rest = TwilioRestFake(sim, account_sid, auth_token, host=rest_host, port=rest_port)
    script = CallScript(
        from_number=from_,
        to_number=to,
        caller_audio=[read_wav_as_ulaw(p) for p in wavs],
        dtmf=list(dtmf or []),
        max_duration_s=max_duration_s,
    )
    await rest.start()
    try:
        result = await sim.place_inbound_call(script)
    finally:
        await rest.stop()
    if out is not None:
        write_wav_from_ulaw(out, result.agent_audio)
    return result
