"""The scripted components the fixture agents use (tests/fakes.py), importable from an agent
file however lkmetrics imports it: the agents stand in for a user's own code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes import EnergyVAD, ScriptedSTT, ScriptedTTS  # noqa: E402

# what the fixture agents hear, in order (the simulated caller speaks tones)
TRANSCRIPTS = ["How many apples are in stock?", "And pears?", "Thanks.", "Bye."]
TOOL_SECONDS = float(os.environ.get("FIXTURE_TOOL_SECONDS", "0.3"))


def stt() -> ScriptedSTT:
    return ScriptedSTT(list(TRANSCRIPTS), delay=0.05)


def tts() -> ScriptedTTS:
    return ScriptedTTS(ttfb=0.1, audio_per_char=0.005)


def vad() -> EnergyVAD:
    return EnergyVAD()


__all__ = ["EnergyVAD", "ScriptedSTT", "ScriptedTTS", "stt", "tts", "vad", "TOOL_SECONDS"]
