"""Whisper tiny.en on the bundled caller recordings, and the model's checksum guard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from switchboard_engine.agent import AgentResources, heard_of
from switchboard_engine.asr import (
    PACKAGED_MODEL_SHA256,
    AsrConfig,
    ModelChecksumError,
    WhisperTranscriber,
    looped,
    packaged_model_dir,
    repeated_unit,
    resolve_model,
    sha256_file,
    shared_transcriber,
    verify_model_dir,
)
from switchboard_engine.hints import FlowHints, tool_specs
from switchboard_engine.numbers import find_numbers, tokens
from switchboard_engine.understanding import (
    CONFIRM_BELOW,
    NUMBER_SURE,
    TRANSCRIPT_SURE,
    Decision,
    Heard,
    Understanding,
    context_from_instructions,
)
from switchboard_sim.assets import recording_ulaw, transcripts
from tools.registry import default_registry

from .conftest import AGENT_TODAY

#: What the demo flow's understanding must do with each bundled recording: the tool it
#: calls and arguments it must include (None: no call, just an answer), and a word the
#: transcript must hold.
EXPECTED: dict[str, tuple[str | None, dict[str, Any], str]] = {
    "order_status": ("get_order_status", {"order_id": "1042"}, "1042"),
    "goodbye": ("end_call", {}, "goodbye"),
    "agent_please": ("transfer_call", {"target": "human"}, "person"),
    "interrupt": (None, {}, "question"),
}

#: Stand-ins for "another CPU": CTranslate2's int8 kernels round differently from one
#: CPU to the next, so every recording must be understood under both weight types and
#: with greedy decoding as well as the engine's beam (AsrConfig's defaults: int8, 5).
DECODINGS = [("int8", 1), ("int8", 5), ("float32", 1), ("float32", 5)]


def _decide(text: str, heard: Heard | None = None) -> Decision:
    """The engine's understanding of ``text`` in a session of the demo flow (as
    ``UnderstandingResponder`` builds it for a session that matches flows/support.yaml)."""
    flow = next(f for f in FlowHints.load().flows if f.name == "support")
    ctx = context_from_instructions(
        flow.instructions,
        AGENT_TODAY,
        targets=tuple(flow.transfer_targets),
        greeting=flow.greeting,
    )
    specs = tool_specs(default_registry().definitions(flow.tools), flow)
    return Understanding(specs, ctx).decide(text, heard=heard)


def test_every_recording_has_an_expectation() -> None:
    assert sorted(f"{name}.wav" for name in EXPECTED) == sorted(transcripts())


@pytest.mark.parametrize(("compute_type", "beam_size"), DECODINGS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_bundled_recordings_are_understood(
    name: str, compute_type: str, beam_size: int
) -> None:
    """Each recording gives its expected tool call (or none) whatever the decoding: the
    demo and the speech tests never rest on one borderline transcription."""
    asr = shared_transcriber(AsrConfig(compute_type=compute_type, beam_size=beam_size))
    result = await asr.transcribe(recording_ulaw(name))
    text = result.text
    tool, arguments, word = EXPECTED[name]
    assert 0.0 < result.confidence <= 1.0, (text, result.confidence)
    if tool is not None:
        # Heard clearly enough to act on without a read-back (margin for another CPU).
        assert result.confidence > CONFIRM_BELOW + 0.05, (text, result.confidence)
    if word.isdigit():
        spans = [n for n in find_numbers(tokens(text)) if n.digits == word]
        assert spans, text
        # The number is sure enough to look up at once, with margin for another CPU.
        probs = result.token_confidence()[spans[0].start : spans[0].end]
        assert min(probs) >= NUMBER_SURE + 0.03, (text, probs)
        assert result.confidence >= TRANSCRIPT_SURE + 0.03, (text, result.confidence)
    else:
        assert word in tokens(text), text
    # "".join(pieces) is the text, one probability per piece.
    assert "".join(p for p, _ in result.pieces) == text
    assert all(0.0 <= p <= 1.0 for _, p in result.pieces)
    decision = _decide(text, heard_of(result))
    if tool is None:
        assert decision.action != "call", (text, decision)
        return
    assert (decision.action, decision.tool) == ("call", tool), (text, decision)
    assert arguments.items() <= dict(decision.arguments).items(), (text, decision)


def test_a_looping_transcript_is_recognised() -> None:
    """Whisper's loops on a short window are caught (then the full window decodes)."""
    assert looped("4483, 483, 483, 483, 483,")
    assert looped("6 5 4 3 6 5 4 3 6 5 4 3")
    assert looped("It's 3 5 7 1 It's 3 5 7 1")
    assert not looped("Order 1 1 1 5 please")
    assert not looped("No, no, no, the order is 2268.")


def test_a_loop_that_repeats_the_whole_sentence_is_cut_to_its_first_copy() -> None:
    """Then no second decode in Whisper's full window is needed (~600 ms on 2 cores)."""
    assert repeated_unit("Order 1042. Order 1042. Order 1042.") == "Order 1042."
    assert repeated_unit("Where is it? Where is it?") == "Where is it?"
    assert repeated_unit("4483, 483, 483, 483,") is None  # a loop, but not of the whole
    assert repeated_unit("Order 1042.") is None


async def test_the_same_audio_gives_the_same_transcript(agent_resources: AgentResources) -> None:
    """Deterministic: one recording transcribed three times gives one text, one
    confidence and the same token probabilities."""
    asr = agent_resources.transcriber
    assert asr is not None
    audio = recording_ulaw("order_status")
    results = [await asr.transcribe(audio) for _ in range(3)]
    assert len({(r.text, r.confidence, r.pieces, r.alternatives, r.spelled) for r in results}) == 1


@pytest.mark.parametrize(("name", "spelled"), [("order_status", True), ("goodbye", False)])
async def test_a_turn_holding_a_number_is_decoded_again_without_numerals(
    agent_resources: AgentResources, name: str, spelled: bool
) -> None:
    """The spelled pass runs only when the transcript holds a number, and writes none."""
    asr = agent_resources.transcriber
    assert asr is not None
    result = await asr.transcribe(recording_ulaw(name))
    assert bool(result.spelled) is spelled, result
    assert not any(c.isdigit() for c in result.spelled), result.spelled
    off = WhisperTranscriber(AsrConfig(spell_numbers=False))
    assert off.transcribe_sync(recording_ulaw(name)).spelled == ""


async def test_silence_transcribes_to_nothing(agent_resources: AgentResources) -> None:
    asr = agent_resources.transcriber
    assert asr is not None
    assert (await asr.transcribe(b"\xff" * 400)).text == ""  # 50 ms: below the minimum


def test_packaged_model_matches_its_recorded_checksums() -> None:
    verify_model_dir(packaged_model_dir(), PACKAGED_MODEL_SHA256)


def _fake_model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    return folder


def test_a_model_whose_files_differ_is_refused(tmp_path: Path) -> None:
    folder = _fake_model(tmp_path)
    good = {"model.bin": sha256_file(folder / "model.bin")}
    verify_model_dir(folder, good)
    with pytest.raises(ModelChecksumError, match="refusing to load"):
        verify_model_dir(folder, {"model.bin": "0" * 64})
    with pytest.raises(ModelChecksumError, match="missing"):
        verify_model_dir(folder, {"tokenizer.json": "0" * 64})


def test_a_custom_model_folder_is_checked_against_its_sha256sums(tmp_path: Path) -> None:
    folder = _fake_model(tmp_path)
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  model.bin\n")
    with pytest.raises(ModelChecksumError):
        resolve_model(AsrConfig(model_dir=folder))
    (folder / "SHA256SUMS").write_text(f"{sha256_file(folder / 'model.bin')}  model.bin\n")
    assert resolve_model(AsrConfig(model_dir=folder)) == folder.resolve()
