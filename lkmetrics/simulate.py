"""``lkmetrics simulate``: a headless caller that talks to an in-process agent session."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lkmetrics.agent import Components, session_info, start_session
from lkmetrics.capture import Capture
from lkmetrics.config import AgentSettings
from lkmetrics.harness import (
    Caller,
    PacedAudioInput,
    RealtimeSpeaker,
    TurnResult,
    frames_to_pcm,
    write_wav,
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
            def save(frames: list, i: int = i, pcm: np.ndarray = pcm) -> None:  # type: ignore[type-arg]
                if record_dir is not None:
                    write_wav(record_dir / f"turn{i:03d}-user.wav", pcm, mic.sample_rate)
                    agent_pcm, rate = frames_to_pcm(frames)
                    write_wav(record_dir / f"turn{i:03d}-agent.wav", agent_pcm, rate)

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
