"""Text-to-speech for the local engine: text in, 8 kHz G.711 μ-law out.

Backends run as subprocesses via ``asyncio.create_subprocess_exec`` so the event loop
is never blocked. Output is deterministic for a given (backend, voice, text) and is
cached in an LRU. The wire format is the one the Realtime API streams for
``audio/pcmu`` / ``g711_ulaw`` (docs/protocols.md §1 "Session"): 1 byte per sample,
8000 samples/s, so 1 ms = 8 bytes.

Backends, in order of preference for ``auto``: Piper (``switchboard_engine.piper``, only with the
optional ``piper`` extra: piper-tts is GPL-3.0), ``espeak-ng``, then ``flite``. Every
backend's output is low-pass filtered at 3.6 kHz before it is resampled to 8 kHz (no
aliasing) and encoded as μ-law.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from app.audio import pcm16_to_ulaw_8k

#: Entries kept in the synthesis cache (one entry per distinct (voice, text)).
CACHE_SIZE = 256
#: Longest :meth:`Tts.drain` waits for running syntheses when the engine stops (s).
DRAIN_S = 5.0
#: Longest text synthesised in one call (characters); longer text is cut.
MAX_TEXT_CHARS = 2000


class TtsUnavailableError(RuntimeError):
    """Neither espeak-ng nor flite is installed (``apt-get install espeak-ng flite``)."""


class TtsBackend(Protocol):
    """One synthesis backend: ``await render(text, voice)`` → 8 kHz μ-law bytes."""

    name: str

    async def render(self, text: str, voice: str) -> bytes: ...


def parse_wav_pcm16(wav: bytes) -> tuple[bytes, int]:
    """Return (16-bit mono PCM, sample rate in Hz) from a PCM16 WAV.

    Tolerates the streaming header espeak-ng writes to stdout (RIFF/data sizes of
    0x7FFFFFFF): the data chunk is taken to the end of the buffer.
    """
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE stream")
    pos, rate, channels, width = 12, 0, 1, 2
    while pos + 8 <= len(wav):
        cid = wav[pos : pos + 4]
        size = int.from_bytes(wav[pos + 4 : pos + 8], "little")
        body_start = pos + 8
        if cid == b"fmt ":
            fmt = wav[body_start : body_start + size]
            channels = int.from_bytes(fmt[2:4], "little")
            rate = int.from_bytes(fmt[4:8], "little")
            width = int.from_bytes(fmt[14:16], "little") // 8
        elif cid == b"data":
            data = wav[body_start : min(len(wav), body_start + size)]
            if width != 2 or channels != 1 or rate <= 0:
                raise ValueError(f"unsupported WAV: {channels} ch, {width * 8} bit, {rate} Hz")
            return data[: len(data) - (len(data) % 2)], rate
        pos = body_start + size + (size & 1)
    raise ValueError("WAV has no data chunk")


def _wav_to_ulaw(wav: bytes) -> bytes:
    pcm, rate = parse_wav_pcm16(wav)
    return pcm16_to_ulaw_8k(pcm, rate)


async def _run(argv: list[str], stdin: bytes | None = None) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(stdin)
    except asyncio.CancelledError:
        # Cancelled (a connection or the event loop closing): end the child now, or its
        # pipes keep the cancelled task waiting and the loop never closes.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')}")
    return out


class EspeakBackend:
    """``espeak-ng --stdin --stdout -v en-us -s 165`` (WAV at 22050 Hz → 8 kHz μ-law)."""

    name = "espeak-ng"

    def __init__(self, binary: str = "espeak-ng", language: str = "en-us", wpm: int = 165):
        self.binary, self.language, self.wpm = binary, language, wpm

    async def render(self, text: str, voice: str) -> bytes:
        # Text goes through stdin so a leading "-" can never be read as an option.
        argv = [self.binary, "--stdin", "--stdout", "-v", self.language, "-s", str(self.wpm)]
        return _wav_to_ulaw(await _run(argv, text.encode()))


class FliteBackend:
    """``flite -t TEXT -o FILE.wav`` (WAV at 8 or 16 kHz → 8 kHz μ-law)."""

    name = "flite"

    def __init__(self, binary: str = "flite"):
        self.binary = binary

    async def render(self, text: str, voice: str) -> bytes:
        fd, name = tempfile.mkstemp(suffix=".wav", prefix="sb-tts-")
        os.close(fd)
        path = Path(name)
        try:
            await _run([self.binary, "-t", text, "-o", str(path)])
            return _wav_to_ulaw(await asyncio.to_thread(path.read_bytes))
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)


#: Names accepted by :func:`make_backend` (``auto``: the first available of the others).
BACKENDS = ("auto", "piper", "espeak-ng", "flite")


def make_backend(name: str = "auto") -> TtsBackend:
    """The named backend; ``auto`` = Piper if its extra is installed, else espeak-ng if on
    PATH, else flite. :class:`TtsUnavailableError` if the choice is not installed."""
    from switchboard_engine.piper import PiperBackend, piper_available

    if name not in BACKENDS:
        raise ValueError(f"unknown TTS backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name in ("auto", "piper") and piper_available():
        return PiperBackend()
    if name == "piper":
        raise TtsUnavailableError("Piper is not installed: pip install 'switchboard[piper]'")
    if name in ("auto", "espeak-ng") and shutil.which("espeak-ng"):
        return EspeakBackend()
    if name in ("auto", "flite") and shutil.which("flite"):
        return FliteBackend()
    raise TtsUnavailableError(
        f"TTS backend {name!r} unavailable: install espeak-ng (or flite), "
        "e.g. `apt-get install espeak-ng flite`, or `pip install 'switchboard[piper]'`"
    )


def default_backend() -> TtsBackend:
    """espeak-ng if on PATH, else flite; :class:`TtsUnavailableError` if neither is.

    (The scripted engine and the test caller's voice; the understanding engine uses
    :func:`make_backend` ``("auto")``, which prefers Piper.)
    """
    return make_backend("espeak-ng") if shutil.which("espeak-ng") else make_backend("flite")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? followed by a space), for streaming TTS."""
    parts = [p.strip() for p in _SENTENCE_END.split(" ".join(text.split()))]
    return [p for p in parts if p] or ([text] if text else [])


class Tts:
    """Cached synthesiser. ``await synthesize(text, voice)`` → 8 kHz μ-law bytes."""

    def __init__(self, backend: TtsBackend | None = None, cache_size: int = CACHE_SIZE):
        self._backend = backend
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[tuple[str, str], asyncio.Future[bytes]] = {}

    async def warm(self, lines: Iterable[str], voice: str = "alloy") -> None:
        """Synthesise ``lines`` into the cache (one at a time, in the background)."""
        for line in lines:
            await self.synthesize(line, voice)

    async def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Wait (up to ``timeout_s``) for the syntheses still running, which finish for the
        cache after their callers went away: a subprocess cancelled while it starts can
        keep the event loop from closing (CPython's ``_make_subprocess_transport`` then
        waits for a child that is never reaped)."""
        running = list(self._inflight.values())
        if running:
            await asyncio.wait(running, timeout=timeout_s)

    @property
    def backend(self) -> TtsBackend:
        if self._backend is None:
            self._backend = default_backend()
        return self._backend

    async def synthesize(self, text: str, voice: str = "alloy") -> bytes:
        """Speak ``text``; returns μ-law at 8 kHz (len(result) / 8 = duration in ms)."""
        text = " ".join(text.split())[:MAX_TEXT_CHARS]
        if not text:
            return b""
        # Backends with one voice (all of today's) share cache entries across voices.
        key = (voice if getattr(self.backend, "has_voices", False) else "", text)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        running = self._inflight.get(key)
        if running is not None:  # the same line is being synthesised (e.g. speculatively)
            return await asyncio.shield(running)
        future = asyncio.ensure_future(self.backend.render(text, voice))
        self._inflight[key] = future
        try:
            audio = await asyncio.shield(future)
        finally:
            if future.done():
                self._inflight.pop(key, None)
            else:  # we were cancelled: let the synthesis finish for the cache
                future.add_done_callback(lambda _f: self._inflight.pop(key, None))
        self._cache[key] = audio
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return audio


_default_tts: Tts | None = None


async def synthesize(text: str, voice: str = "alloy") -> bytes:
    """Speak ``text`` with the process-wide cached :class:`Tts`; 8 kHz μ-law bytes."""
    global _default_tts
    if _default_tts is None:
        _default_tts = Tts()
    return await _default_tts.synthesize(text, voice)
