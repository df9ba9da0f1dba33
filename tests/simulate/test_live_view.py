"""The default live view of a 4-turn ``simulate`` fits a screen at 80 columns (issue 20):
the recipe's LLM Metrics Report for each LLM response, one TTS line per reply (not one table
per sentence), STT and EOU in a line each, every turn bar on the session's one time scale."""

from __future__ import annotations

import asyncio
import io
import re

import numpy as np
import pytest
from rich.console import Console

from lkmetrics.records import Record
from tests.helpers.common import ListWriter
from tests.helpers.fakes import EnergyVAD, ScriptedSTT, ScriptedTTS, tone
from tests.helpers.llm_server import LLMServer

pytestmark = pytest.mark.timeout(120)

# four sentences: LiveKit synthesises each on its own, one TTS request (and record) each
REPLY = ("Sure, I can help you with that today. The sky over the city is blue this morning. "
         "It may rain a little later in the afternoon. Is there anything else I can do?")


async def four_turns(server: LLMServer, console: Console) -> list[Record]:
    """A greeting and three user turns, as ``simulate --local`` runs them, with the live
    view in ``console`` and every record kept."""
    from livekit.plugins import openai

    from lkmetrics.agent.server import Components
    from lkmetrics.config.settings import AgentSettings
    from lkmetrics.pipeline import Pipeline
    from lkmetrics.render.live import TableWriter
    from lkmetrics.simulate.run import simulate

    server.script.text = REPLY
    server.script.tokens = 24
    writer = ListWriter()
    pipeline = Pipeline([TableWriter(console), writer])
    settings = AgentSettings(stt="fake/scripted", llm="test/test-model", tts="fake/scripted",
                             llm_base_url=server.url, greet=True, turn_detection="vad")
    components = Components(
        stt=ScriptedSTT(["What is the weather like?", "And tomorrow?", "Thank you."],
                        delay=0.1),
        llm=openai.LLM(model="test-model", base_url=server.url, api_key="none"),
        tts=ScriptedTTS(ttfb=0.05, audio_per_char=0.004),
        vad=EnergyVAD(min_silence=0.3),
    )
    speech = [np.concatenate([tone(0.6), np.zeros(4000, dtype=np.int16)]) for _ in range(3)]
    results = await simulate(settings, components, pipeline, speech, pause=0.2, timeout=30)
    pipeline.close()
    assert [r.ok for r in results] == [True] * len(results), [r.error for r in results]
    return writer.records


def test_four_turns_fit_in_160_lines_at_80_columns(llm_server: LLMServer) -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, record=True, color_system=None,
                      force_terminal=False)
    records = asyncio.run(four_turns(llm_server, console))
    text = console.export_text()
    lines = text.splitlines()
    kinds = [r["kind"] for r in records]
    assert kinds.count("turn") == 4
    assert kinds.count("tts") >= 4 * 3  # several sentences per reply: the old wall
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) <= 160, text
    assert text.count("LLM Metrics Report") == kinds.count("llm")
    # one TTS line per reply, the reply's requests counted in it
    tts_lines = [line for line in lines if line.startswith("tts ")]
    assert len(tts_lines) == 4, tts_lines
    counts = [int(m.group(1)) for line in tts_lines
              if (m := re.search(r"(\d+) req\b", line))]
    assert sum(counts) == kinds.count("tts")
    assert "TTS Metrics Report" not in text and "STT Metrics Report" not in text
    assert text.count("bar: 40 cols = ") == 1  # the scale, shown once
