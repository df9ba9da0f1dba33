"""``lkmetrics simulate``: one in-process agent session talked to by the scripted caller."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from lkmetrics.agent.capture import Capture
from lkmetrics.agent.server import Components, session_info, start_session
from lkmetrics.config.settings import AgentSettings
from lkmetrics.pipeline import Pipeline
from lkmetrics.simulate.caller import (
    Caller,
    Line,
    PacedAudioInput,
    ProviderFailed,
    RealtimeSpeaker,
    TurnResult,
)
from lkmetrics.simulate.script import Behaviour


def as_lines(utterances: Sequence[np.ndarray | Line]) -> list[Line]:
    return [u if isinstance(u, Line) else Line(u) for u in utterances]


def make_caller(session: Any, capture: Capture, mic: PacedAudioInput, speaker: RealtimeSpeaker,
                settings: AgentSettings, behaviour: Behaviour | None,
                backchannel: np.ndarray | None) -> Caller:
    """The scripted caller of a session, reporting to its capture: heard latency, dynamics
    notes, and the endpoint the user gave to name in a provider failure."""
    return Caller(session, mic, speaker, on_heard=capture.note_heard, on_note=capture.note,
                  base_urls={"LLM": settings.llm_base_url},
                  behaviour=behaviour or Behaviour(), backchannel=backchannel)


def audio_saver(record_dir: Path | None, rate: int
                ) -> Callable[[int, Line], Callable[[list[rtc.AudioFrame]], None]] | None:
    """What the caller calls with each turn's audio for --record-audio (None: nothing)."""
    if record_dir is None:
        return None
    return lambda i, line: functools.partial(save_turn_audio, record_dir, i, line.pcm, rate)


async def simulate(
    settings: AgentSettings,
    components: Components,
    pipeline: Pipeline,
    utterances: Sequence[np.ndarray | Line],
    *,
    behaviour: Behaviour | None = None,
    backchannel: np.ndarray | None = None,
    pause: float = 1.0,
    timeout: float = 60.0,
    record_dir: Path | None = None,
    info: Mapping[str, Any] | None = None,
    on_turn: Callable[[TurnResult], None] | None = None,
) -> list[TurnResult]:
    """Run one session: greet (if asked), then speak each utterance (int16 mono 16 kHz) and
    wait for the reply, behaving as ``behaviour`` says (``backchannel``: what a backchannel
    says). Records go to ``pipeline``; the session is closed on every path.

    ``info`` adds fields to the session record (bench voice: its bench id, the caller);
    ``on_turn`` is called on the loop with each turn's result as it ends."""
    from lkmetrics.agent import quiet

    quiet.install(reported=True)  # the caller names a failed request; LiveKit's logs do not
    from livekit.agents import AgentSession

    capture = Capture(pipeline)
    body = session_info(settings, turns=len(utterances))
    body.update(info or {})  # type: ignore[typeddict-item]
    capture.start(body)
    mic = PacedAudioInput()
    speaker = RealtimeSpeaker()
    speaker.keep_frames = record_dir is not None
    results: list[TurnResult] = []
    session: AgentSession | None = None  # type: ignore[type-arg]
    try:
        session = await start_session(settings, components, capture, mic=mic, speaker=speaker)
        caller = make_caller(session, capture, mic, speaker, settings, behaviour, backchannel)
        if settings.greet:
            # no greeting: talk anyway (a provider that failed for good fails turn 1 at once)
            with contextlib.suppress(asyncio.TimeoutError, ProviderFailed):
                await caller.wait_greeting(timeout)
            speaker.take_frames()
        results = await caller.converse(as_lines(utterances), timeout, pause, on_turn=on_turn,
                                        on_audio=audio_saver(record_dir, mic.sample_rate))
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


def run(settings: AgentSettings, components: Components, pipeline: Pipeline,
        utterances: Sequence[np.ndarray | Line], *, pause: float, timeout: float,
        record_dir: Path | None, behaviour: Behaviour | None = None,
        backchannel: np.ndarray | None = None) -> list[TurnResult]:
    """Run :func:`simulate` on a fresh event loop (blocking)."""
    return asyncio.run(simulate(settings, components, pipeline, utterances, pause=pause,
                                timeout=timeout, record_dir=record_dir, behaviour=behaviour,
                                backchannel=backchannel))
