"""One in-process voice session through LiveKit's real pipeline: scripted STT, TTS and VAD
(tests/helpers/fakes.py), the LLM over real HTTP (tests/helpers/llm_server.py), a paced caller
speaking tones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tests.helpers.common import ListWriter
from tests.helpers.fakes import EnergyVAD, ScriptedSTT, ScriptedTTS, tone
from tests.helpers.llm_server import LLMServer

MIN_SILENCE = 0.3  # the fake VAD's end-of-speech hangover


async def voice_session(server: LLMServer, transcripts: list[str], *,
                        writers: Sequence[Any] = (), greet: bool = False,
                        llm_ttft: float = 0.3, stt_delay: float = 0.2, tts_ttfb: float = 0.15,
                        speech_seconds: float = 0.8, timeout: float = 20.0,
                        speech: Sequence[np.ndarray] | None = None,
                        spoken: Sequence[str | None] | None = None,
                        behaviour: Any = None, backchannel: np.ndarray | None = None,
                        audio_per_char: float = 0.01, lines: Sequence[Any] | None = None,
                        ) -> tuple[list[dict[str, Any]], list[Any], ScriptedSTT]:
    """Speak one tone per transcript (or ``speech``, with the words ``spoken``) and wait for
    each reply, the caller behaving as ``behaviour`` says (``lines``: the caller's Lines as
    they are, each with its own steps); the records (also given to
    ``writers``), the caller's turn results and the STT (which saw the audio)."""
    from livekit.plugins import openai

    from lkmetrics.agent.server import Components
    from lkmetrics.config.settings import AgentSettings
    from lkmetrics.pipeline import Pipeline
    from lkmetrics.simulate.caller import Line
    from lkmetrics.simulate.run import simulate

    server.script.ttft = llm_ttft
    kept = ListWriter()
    pipeline = Pipeline([kept, *writers])
    settings = AgentSettings(stt="fake/scripted", llm="test/test-model", tts="fake/scripted",
                             llm_base_url=server.url, greet=greet, turn_detection="vad")
    stt = ScriptedSTT(transcripts, delay=stt_delay)
    components = Components(
        stt=stt,
        llm=openai.LLM(model="test-model", base_url=server.url, api_key="none"),
        tts=ScriptedTTS(ttfb=tts_ttfb, audio_per_char=audio_per_char),
        vad=EnergyVAD(min_silence=MIN_SILENCE),
    )
    if speech is None:
        speech = [np.concatenate([tone(speech_seconds), np.zeros(4000, dtype=np.int16)])
                  for _ in transcripts]
    words = list(spoken) if spoken is not None else [None] * len(speech)
    if lines is None:
        lines = [Line(pcm, text) for pcm, text in zip(speech, words, strict=True)]
    results = await simulate(settings, components, pipeline, lines, pause=0.3,
                             timeout=timeout, behaviour=behaviour, backchannel=backchannel)
    pipeline.close()
    assert not pipeline.errors, pipeline.errors
    return kept.records, list(results), stt
