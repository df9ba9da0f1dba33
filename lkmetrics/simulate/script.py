"""The caller's script: the built-in spoken questions, WAV files, or text spoken with the
local Piper voice (cached in the app directory), as int16 mono PCM at the caller's rate."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from lkmetrics.errors import UsageError
from lkmetrics.home import app_dir

INPUT_RATE = 16000  # the caller's microphone rate


@dataclass
class Utterance:
    label: str  # the file name or the text
    pcm: np.ndarray  # int16 mono at INPUT_RATE


BUILTIN_SCRIPT = (
    ("question1.wav", "What is the capital of France?"),
    ("question2.wav", "How many days are there in a week?"),
    ("question3.wav", "Can you name a color of the sky?"),
)


def load_utterances(say: Sequence[str], turns: int = 1) -> list[Utterance]:
    """The caller's script: each --say is a WAV path or text (spoken with the local Piper
    voice, cached in the app directory); none means the built-in three questions."""
    from lkmetrics.local.speech import read_wav_pcm16_mono

    script: list[Utterance] = []
    if not say:
        data = resources.files("lkmetrics") / "data"
        for name, text in BUILTIN_SCRIPT:
            with resources.as_file(data / name) as path:
                script.append(Utterance(text, read_wav_pcm16_mono(path, INPUT_RATE)))
    for item in say:
        path = Path(item).expanduser()
        if item.lower().endswith(".wav") or path.is_file():
            if not path.is_file():
                raise UsageError(f"--say {item}: no such WAV file (give a path or some text).")
            script.append(Utterance(path.name, read_wav_pcm16_mono(path, INPUT_RATE)))
        else:
            script.append(Utterance(item, read_wav_pcm16_mono(spoken(item), INPUT_RATE)))
    return script * turns


def spoken(text: str) -> Path:
    """A WAV of ``text`` in the local Piper voice, synthesised once and cached."""
    from lkmetrics.local.speech import synthesize_wav

    key = hashlib.sha1(text.encode()).hexdigest()[:16]
    path = app_dir() / "speech" / f"{key}.wav"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        synthesize_wav(text, tmp)
        tmp.replace(path)
    return path
