"""Whisper tiny.en on the bundled caller recordings, and the model's checksum guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.agent import AgentResources
from app.engine.asr import (
    PACKAGED_MODEL_SHA256,
    AsrConfig,
    ModelChecksumError,
    packaged_model_dir,
    resolve_model,
    sha256_file,
    verify_model_dir,
)
from app.engine.numbers import find_numbers, tokens
from app.sim.assets import recording_ulaw


async def test_bundled_recordings_are_understood(agent_resources: AgentResources) -> None:
    asr = agent_resources.transcriber
    assert asr is not None
    order = (await asr.transcribe(recording_ulaw("order_status"))).text
    # tiny.en hears espeak's "status of order" poorly but gets the number (see the bench).
    assert "1042" in [n.digits for n in find_numbers(tokens(order))], order
    goodbye = (await asr.transcribe(recording_ulaw("goodbye"))).text
    assert "goodbye" in goodbye.lower(), goodbye
    person = (await asr.transcribe(recording_ulaw("agent_please"))).text
    assert "person" in person.lower(), person


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
