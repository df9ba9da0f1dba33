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
                        ) -> tuple[list[dict[str, Any]], list[Any], ScriptedSTT]:
    """Speak one tone per transcript and wait for each reply; the records (also given to
    ``writers``), the caller's turn results and the STT (which saw the audio)."""
    from livekit.plugins import openai

    from lkmetrics.agent.server import Components
    from lkmetrics.config import AgentSettings
    from lkmetrics.pipeline import Pipeline
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
        tts=ScriptedTTS(ttfb=tts_ttfb),
        vad=EnergyVAD(min_silence=MIN_SILENCE),
    )
    speech = [np.concatenate([tone(speech_seconds), np.zeros(4000, dtype=np.int16)])
              for _ in transcripts]
    results = await simulate(settings, components, pipeline, speech, pause=0.3,
                             timeout=timeout)
    pipeline.close()
    assert not pipeline.errors, pipeline.errors
    return kept.records, list(results), stt
