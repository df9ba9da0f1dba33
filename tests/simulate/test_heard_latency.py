"""Heard latency: the simulated caller's own clock from its speech end to the first audible
sample of the reply, next to LiveKit's e2e_latency in each turn record."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from lkmetrics.records import Record
from tests.helpers.common import ListWriter
from tests.helpers.fakes import EnergyVAD, ScriptedSTT, ScriptedTTS, tone
from tests.helpers.llm_server import LLMServer

pytestmark = pytest.mark.timeout(120)

FRAME = 0.02  # the caller's microphone frame (simulate.caller.FRAME_MS)
SCHEDULING = 0.03  # what the loop may add between a frame's emission and its processing


async def session(server: LLMServer, lead_in: float) -> tuple[list[Record], list[float | None]]:
    from livekit.plugins import openai

    from lkmetrics.agent.server import Components
    from lkmetrics.config.settings import AgentSettings
    from lkmetrics.pipeline import Pipeline
    from lkmetrics.simulate.run import simulate

    server.script.ttft = 0.3
    writer = ListWriter()
    pipeline = Pipeline([writer])
    settings = AgentSettings(stt="fake/scripted", llm="test/test-model", tts="fake/scripted",
                             llm_base_url=server.url, greet=False, turn_detection="vad")
    components = Components(
        stt=ScriptedSTT(["Hello?", "Again?"], delay=0.2),
        llm=openai.LLM(model="test-model", base_url=server.url, api_key="none"),
        tts=ScriptedTTS(ttfb=0.15, lead_in=lead_in),
        vad=EnergyVAD(min_silence=0.3),
    )
    # a tone that ends mid-frame, then trailing silence that is not speech
    speech = [np.concatenate([tone(0.813), np.zeros(6000, dtype=np.int16)]) for _ in range(2)]
    results = await simulate(settings, components, pipeline, speech, pause=0.3, timeout=20)
    pipeline.close()
    return writer.records, [r.heard_latency for r in results]


@pytest.mark.parametrize("lead_in", [0.0, 0.25])
def test_heard_latency_is_recorded_next_to_e2e(llm_server: LLMServer, lead_in: float) -> None:
    records, heard = asyncio.run(session(llm_server, lead_in))
    turns = [r for r in records if r["kind"] == "turn"]
    assert [t["turn"] for t in turns] == [1, 2]
    assert [t["heard_latency"] for t in turns] == heard  # the caller's figure, in the record
    for t in turns:
        e2e, h = t["e2e_latency"], t["heard_latency"]
        assert e2e is not None and h is not None
        # LiveKit's user end is the VAD's end of speech less its silence count: never before
        # the caller's own speech end, and at most a frame plus scheduling after it; its agent
        # start is the first frame pushed, which the caller hears lead_in later when the TTS
        # starts with silence
        assert h >= e2e + lead_in - 0.005
        assert h - e2e <= lead_in + FRAME + SCHEDULING
    summary = records[-1]
    assert summary["figures"]["heard"]["count"] == 2


def test_speaker_hears_the_first_audible_sample_at_its_playout_time() -> None:
    from livekit import rtc

    from lkmetrics.simulate.caller import RealtimeSpeaker

    async def main() -> tuple[float, float]:
        speaker = RealtimeSpeaker()
        heard: list[float] = []
        speaker.expect_audio(heard.append)
        silent = np.zeros(2400, dtype=np.int16)  # 100 ms at 24 kHz
        loud = np.concatenate([np.zeros(240, dtype=np.int16), tone(0.09, rate=24000)])
        import time

        t0 = time.monotonic()
        for pcm in (silent, silent, loud):  # pushed at once, faster than real time
            await speaker.capture_frame(rtc.AudioFrame(pcm.tobytes(), 24000, 1, len(pcm)))
        return t0, heard[0]

    t0, at = asyncio.run(main())
    # 200 ms of silence, then 10 ms of silence inside the loud frame
    assert 0.21 <= at - t0 < 0.21 + 0.01
