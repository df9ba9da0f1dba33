"""The caller's script: the built-in spoken questions, WAV files, or text spoken with the
local Piper voice (cached in the app directory), as int16 mono PCM at the caller's rate; and
how the caller behaves around the agent's replies (:class:`Behaviour`)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lkmetrics.errors import UsageError
from lkmetrics.home import app_dir

if TYPE_CHECKING:
    from lkmetrics.simulate.scenario import ScenarioTurn

INPUT_RATE = 16000  # the caller's microphone rate


# a sample louder than this (int16, about -54 dBFS) is speech or agent audio, not silence
AUDIBLE = 64
MAX_BEHAVIOUR_SECONDS = 600.0  # a barge-in, backchannel or pause longer than this is a typo
BACKCHANNEL_TEXT = "Mm-hmm."


def audible_bounds(samples: np.ndarray) -> tuple[int, int] | None:
    """The index of the first audible sample and one past the last one, or None if silent."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > AUDIBLE)
    if loud.size == 0:
        return None
    return int(loud[0]), int(loud[-1]) + 1


@dataclass
class Utterance:
    label: str  # the file name or the text
    pcm: np.ndarray  # int16 mono at INPUT_RATE
    text: str | None = None  # the words spoken, when known (stt.wer compares against them)
    behaviour: Behaviour | None = None  # its own steps (--scenario), over the command line's
    pause: float | None = None  # seconds of silence after its reply (None: --pause)


@dataclass(frozen=True)
class Behaviour:
    """How the caller talks like a person: ``--barge-in``, ``--backchannel``, ``--pause-mid``
    (seconds each; None: not done)."""

    barge_in: float | None = None  # into the agent's audio, the caller says its next line
    backchannel: float | None = None  # into the agent's audio, "mm-hmm", and keeps listening
    pause_mid: float | None = None  # each line said in two halves with this pause between

    def over(self, default: Behaviour) -> Behaviour:
        """These steps, and ``default``'s where this one has none (a scenario turn's own
        steps over the command line's)."""
        return Behaviour(*(mine if mine is not None else theirs for mine, theirs in (
            (self.barge_in, default.barge_in), (self.backchannel, default.backchannel),
            (self.pause_mid, default.pause_mid))))

    def check(self, lines: int, repeat_flag: str = "--turns") -> None:
        """One UsageError line for seconds that are not a sane positive number, or a
        barge-in with no next line to say."""
        for option, value in (("--barge-in", self.barge_in),
                              ("--backchannel", self.backchannel),
                              ("--pause-mid", self.pause_mid)):
            if value is not None and not (math.isfinite(value)
                                          and 0 < value <= MAX_BEHAVIOUR_SECONDS):
                raise UsageError(f"{option} takes seconds above 0 and at most "
                                 f"{MAX_BEHAVIOUR_SECONDS:g} (got {value}).")
        if self.barge_in is not None and lines < 2:
            raise UsageError("--barge-in: the caller barges in with its next line, and the "
                             f"script has one line; give two or more (--say twice, or "
                             f"{repeat_flag} 2).")


def split_in_two(pcm: np.ndarray, rate: int = INPUT_RATE) -> tuple[np.ndarray, np.ndarray]:
    """A line cut in two between words: at the quietest 20 ms near its middle (35-65% of its
    speech), so neither half ends mid-syllable."""
    bounds = audible_bounds(pcm)
    if bounds is None:
        mid = len(pcm) // 2
        return pcm[:mid], pcm[mid:]
    start, end = bounds
    win = rate // 50
    lo, hi = start + (end - start) * 35 // 100, start + (end - start) * 65 // 100
    best, best_energy = (lo + hi) // 2, math.inf
    for i in range(lo, max(lo, hi - win) + 1, win // 2):
        energy = float(np.mean(np.abs(pcm[i:i + win].astype(np.int32))))
        if energy < best_energy:
            best, best_energy = i + win // 2, energy
    return pcm[:best], pcm[best:]


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
                script.append(Utterance(text, read_wav_pcm16_mono(path, INPUT_RATE), text))
    for item in say:
        wav, words = split_say(item)
        path = Path(wav).expanduser()
        if wav.lower().endswith(".wav") or path.is_file():
            if not path.is_file():
                raise UsageError(f"--say {wav}: no such WAV file (give a path or some text).")
            script.append(Utterance(path.name, read_wav_pcm16_mono(path, INPUT_RATE), words))
        else:
            script.append(Utterance(item, read_wav_pcm16_mono(spoken(item), INPUT_RATE), item))
    return script * turns


def scenario_utterances(turns: Sequence[ScenarioTurn]) -> list[Utterance]:
    """The caller's script from a scenario's turns, each with its own steps and pause."""
    from lkmetrics.local.speech import read_wav_pcm16_mono

    script: list[Utterance] = []
    for turn in turns:
        if turn.wav is not None:
            pcm = read_wav_pcm16_mono(turn.wav, INPUT_RATE)
            label = turn.wav.name
        else:
            assert turn.say is not None
            pcm = read_wav_pcm16_mono(spoken(turn.say), INPUT_RATE)
            label = turn.say
        script.append(Utterance(label, pcm, turn.text, turn.behaviour, turn.pause))
    return script


def split_say(item: str) -> tuple[str, str | None]:
    """``file.wav=the words`` -> (``file.wav``, ``the words``); anything else -> (item, None)."""
    head, sep, words = item.partition("=")
    if sep and head.lower().endswith(".wav"):
        words = words.strip()
        if not words:
            raise UsageError(f"--say {item}: give the words after '=' (file.wav=the words), "
                             "or no '='.")
        return head, words
    return item, None


def backchannel_pcm(script: Sequence[Utterance], behaviour: Behaviour) -> np.ndarray | None:
    """The caller's backchannel, "Mm-hmm." in the local Piper voice, when ``behaviour`` or a
    line's own steps say one (else None: nothing synthesised)."""
    from lkmetrics.local.speech import read_wav_pcm16_mono

    if behaviour.backchannel is None and not any(
            u.behaviour is not None and u.behaviour.backchannel is not None for u in script):
        return None
    return read_wav_pcm16_mono(spoken(BACKCHANNEL_TEXT), INPUT_RATE)


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
