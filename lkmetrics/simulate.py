"""``lkmetrics simulate``: a headless caller that talks to an in-process agent session."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from livekit import rtc

from lkmetrics.agent import Components, session_info, start_session
from lkmetrics.capture import Capture
from lkmetrics.config import AgentSettings, app_dir
from lkmetrics.errors import UsageError
from lkmetrics.harness import (
    INPUT_RATE,
    Caller,
    PacedAudioInput,
    RealtimeSpeaker,
    TurnResult,
)
from lkmetrics.sink import Pipeline


async def simulate(
    settings: AgentSettings,
    components: Components,
    pipeline: Pipeline,
    utterances: Sequence[np.ndarray],
    *,
    pause: float = 1.0,
    timeout: float = 60.0,
    record_dir: Path | None = None,
) -> list[TurnResult]:
    """Run one session: greet (if asked), then speak each utterance (int16 mono 16 kHz) and
    wait for the reply. Records go to ``pipeline``; the session is closed on every path."""
    from livekit.agents import AgentSession

    capture = Capture(pipeline)
    capture.start(session_info(settings, turns=len(utterances)))
    mic = PacedAudioInput()
    speaker = RealtimeSpeaker()
    speaker.keep_frames = record_dir is not None
    results: list[TurnResult] = []
    session: AgentSession | None = None  # type: ignore[type-arg]
    try:
        session = await start_session(settings, components, capture, mic=mic, speaker=speaker)
        caller = Caller(session, mic, speaker)
        if settings.greet:
            await caller.wait_idle(timeout)
            speaker.take_frames()
        for i, pcm in enumerate(utterances, start=1):
            save = None
            if record_dir is not None:
                save = functools.partial(save_turn_audio, record_dir, i, pcm, mic.sample_rate)
            result = await caller.turn(i, pcm, timeout, on_audio=save)
            results.append(result)
            if not result.ok:
                break
            if i < len(utterances):
                await asyncio.sleep(pause)
    finally:
        mic.close()
        if session is not None:
            await session.aclose()
        capture.end()
    return results


def save_turn_audio(record_dir: Path, index: int, user_pcm: np.ndarray, user_rate: int,
                    agent_frames: list[rtc.AudioFrame]) -> None:
    """Write a turn's user and agent audio as ``turnNNN-user.wav`` / ``turnNNN-agent.wav``."""
    from livekit.agents.utils import merge_frames

    from lkmetrics.local.speech import frame_to_pcm16_mono, write_wav_pcm16

    record_dir.mkdir(parents=True, exist_ok=True)
    write_wav_pcm16(record_dir / f"turn{index:03d}-user.wav", user_pcm, user_rate)
    agent_pcm, agent_rate = np.zeros(0, dtype=np.int16), user_rate
    if agent_frames:
        agent = merge_frames(agent_frames)
        agent_rate = agent.sample_rate
        agent_pcm = frame_to_pcm16_mono(agent, agent_rate)
    write_wav_pcm16(record_dir / f"turn{index:03d}-agent.wav", agent_pcm, agent_rate)


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


def run(settings: AgentSettings, components: Components, pipeline: Pipeline,
        utterances: Sequence[np.ndarray], *, pause: float, timeout: float,
        record_dir: Path | None) -> list[TurnResult]:
    """Run :func:`simulate` on a fresh event loop (blocking)."""
    return asyncio.run(simulate(settings, components, pipeline, utterances, pause=pause,
                                timeout=timeout, record_dir=record_dir))
