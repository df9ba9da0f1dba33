"""Whisper tiny.en in its full 30 s window against lkmetrics' 10 s one: time and word error rate.

    python benchmarks/whisper_window.py [--repeat 2]

Whisper's encoder reads 30 s of audio, a line padded with silence, whatever the line's
length. lkmetrics' local STT (``lkmetrics.local.stt.transcribe``) decodes a line that fits in
a 10 s window (with 1 s of padding) there, and falls back to the full window for longer lines
and for a decoding that repeats itself. This script speaks 17 lines of 0.6-7 s with the
local Piper voice, each three ways (clean; with noise at about 20 dB SNR; inside 0.5 s of
silence, as a VAD segment is), transcribes each with both windows and prints per window the
median and 95th-percentile time, the mean word error rate against the words spoken, the
lines with a word error rate over 0.5 (and what was heard), and how often the short window
fell back (lines too long for it included). Piper's voice varies from run to run, so the
lines do too. A benchmark, not a test: about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lkmetrics.analysis.wer import word_error_rate
from lkmetrics.local import stt
from lkmetrics.local.speech import pcm16_to_float32, read_wav_pcm16_mono, synthesize_wav
from lkmetrics.local.tts import load_piper

LINES = [
    "Hello there.", "Yes.", "No thanks.", "What time is it?",
    "What is the weather like in Paris today?",
    "Can you book me a table for two at seven thirty tonight?",
    "I would like to order a large pizza with mushrooms, olives and extra cheese, please.",
    "Tell me a short story about a dragon who learns to fly over the mountains.",
    "My account number is four five six seven, and I forgot my password again.",
    "How many kilometers is it from London to Edinburgh by train, and how long does the "
    "trip take?",
    "Please remind me tomorrow morning to call my sister about the birthday party on Saturday.",
    "What's the difference between a crocodile and an alligator?",
    "Could you explain how photosynthesis works in simple terms for a ten year old child?",
    "I'm calling because my internet has been down since yesterday afternoon and nothing I "
    "try seems to fix it.",
    "Okay, so my order number is A7-3392-XK, the email is jsmith_84@gmail.com, and it was "
    "placed on March 3rd.",
    "Turn off the lights in the kitchen.",
    "Thank you, that's all for today, goodbye.",
]
RATE = stt.WHISPER_SAMPLE_RATE


def spoken_lines() -> list[tuple[str, np.ndarray]]:
    """Each line spoken by Piper three ways: clean, noisy, and inside silence."""
    voice = load_piper()
    rng = np.random.default_rng(1)
    silence = np.zeros(RATE // 2, dtype=np.float32)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, line in enumerate(LINES):
            path = Path(tmp) / f"{i}.wav"
            synthesize_wav(line, path, voice=voice)
            audio = pcm16_to_float32(read_wav_pcm16_mono(path, RATE))
            noise = rng.normal(0.0, float(np.std(audio)) * 0.1, audio.shape).astype(np.float32)
            out += [(line, audio), (line, audio + noise),
                    (line, np.concatenate([silence, audio, silence]))]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2,
                        help="decode each line N times and keep the last time (default 2)")
    args = parser.parse_args(argv)
    whisper = stt.load_whisper()
    lines = spoken_lines()
    seconds = [a.size / RATE for _, a in lines]
    fits = (stt.whisper_window_frames() - stt.MIN_PADDING_FRAMES) / 100
    too_long = sum(s > fits for s in seconds)
    print(f"{len(lines)} lines of {min(seconds):.1f}-{max(seconds):.1f} s, {too_long} over "
          f"the {fits:g} s that fit the short window; "
          f"threads: {stt.whisper_threads() or 'every core'}")
    fallbacks = 0
    real = stt.transcribe_short

    def counting(whisper: object, audio: np.ndarray) -> tuple[str, float] | None:
        nonlocal fallbacks
        result = real(whisper, audio)
        fallbacks += result is None
        return result

    stt.transcribe_short = counting
    print(f"{'window':8} {'p50 ms':>7} {'p95 ms':>7} {'mean WER':>9} {'WER>0.5':>8} "
          f"{'fell back':>10}")
    medians = {}
    for name, short in (("30 s", False), ("10 s", True)):
        times, errors, bad = [], [], []
        fallbacks = 0
        for line, audio in lines:
            for _ in range(args.repeat):
                start = time.perf_counter()
                text, _ = stt.transcribe(whisper, audio, short_window=short)
                elapsed = time.perf_counter() - start
            times.append(elapsed)
            error = word_error_rate(line, text) or 0.0
            errors.append(error)
            if error > 0.5:
                bad.append(f"  {name}: {line!r} heard as {text!r}")
        medians[name] = statistics.median(times)
        p95 = float(np.percentile(times, 95))
        print(f"{name:8} {medians[name] * 1000:7.0f} {p95 * 1000:7.0f} "
              f"{statistics.fmean(errors):9.3f} {len(bad):8d} "
              f"{(f'{fallbacks // args.repeat}/{len(lines)}' if short else '-'):>10}")
        for entry in bad:
            print(entry)
    print(f"10 s / 30 s, median time: {medians['10 s'] / medians['30 s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
