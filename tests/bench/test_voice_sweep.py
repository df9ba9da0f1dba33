"""``bench voice --sweep``: each value reaches the sessions it runs (LiveKit's endpointing
delay measurably lengthens the end-of-turn delay by the difference; the VAD's silence decides
whether a paused line is answered early), the sweep's rows and table, and bad specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lkmetrics.bench.shared import new_bench_id
from lkmetrics.bench.voice import core as voice
from lkmetrics.cli import app
from lkmetrics.config.settings import AgentSettings
from tests.helpers.fakes import EnergyVAD, ScriptedSTT, ScriptedTTS, tone
from tests.helpers.llm_server import LLMServer

pytestmark = pytest.mark.timeout(240)

DEFAULT_SILENCE = 0.3  # the fake VAD's end-of-speech hangover when the settings give none


def factory(server: LLMServer) -> Any:
    """The scripted components, the VAD built with the settings' min_silence_duration (as
    the real factory loads Silero with it)."""
    from livekit.plugins import openai

    from lkmetrics.agent.server import Components

    def build(settings: AgentSettings) -> Components:
        silence = settings.vad_min_silence or DEFAULT_SILENCE
        return Components(
            stt=ScriptedSTT(["Hello?"] * 10, delay=0.1),
            llm=openai.LLM(model="test-model", base_url=server.url, api_key="none"),
            tts=ScriptedTTS(ttfb=0.15), vad=EnergyVAD(min_silence=silence))

    return build


def sweep_bench(server: LLMServer, tmp_path: Path, sweep: str, lines: int = 2,
                behaviour: Any = None) -> list[voice.VoiceRun]:
    from lkmetrics.bench.voice import driver as voice_driver
    from lkmetrics.local.speech import write_wav_pcm16

    server.script.ttft = 0.1
    path = tmp_path / "line.wav"
    write_wav_pcm16(path, np.concatenate([tone(1.6), np.zeros(4000, dtype=np.int16)]), 16000)
    config = voice.make_config(stt=["fake/fast"], llm=["test/test-model"], tts=["fake/tts"],
                               llm_base_url=server.url, say=(str(path),) * lines, timeout=40,
                               behaviour=behaviour, sweep=sweep)
    for s in config.stacks:
        s.turn_detection = "vad"
    runs, errors = voice_driver.run(config, new_bench_id(), db=None, record=False,
                                    factory=factory(server))
    assert errors == [] and all(r.errors == 0 for r in runs), [r.errors_seen for r in runs]
    return runs


def test_min_endpointing_delay_reaches_the_session(llm_server: LLMServer,
                                                   tmp_path: Path) -> None:
    # both above the final transcript's arrival (0.3 s of VAD silence + the STT's 0.1 s),
    # which LiveKit also waits for
    short, long = sweep_bench(llm_server, tmp_path, "min_endpointing_delay=0.6,1.3")
    assert (short.sweep, long.sweep) == (("min_endpointing_delay", 0.6),
                                         ("min_endpointing_delay", 1.3))
    a, b = short.stats("eou_delay")["p50"], long.stats("eou_delay")["p50"]
    assert a is not None and b is not None
    # LiveKit waits min_delay after the VAD's end of speech: 0.7 s more, and e2e with it
    assert b - a == pytest.approx(0.7, abs=0.1)
    assert 0.6 <= a < 0.6 + 0.1 and 1.3 <= b < 1.3 + 0.1
    e2e = short.stats("e2e")["p50"], long.stats("e2e")["p50"]
    assert e2e[0] is not None and e2e[1] is not None and e2e[1] - e2e[0] > 0.5
    doc = voice.document("b_x", [short, long], [])
    assert [r["value"] for r in doc["sweep"]["rows"]] == [0.6, 1.3]
    assert doc["sweep"]["name"] == "min_endpointing_delay"
    assert doc["sweep"]["rows"][0]["eot_rate"] is None  # no --pause-mid: not measured
    assert [r["sweep"]["value"] for r in doc["runs"]] == [0.6, 1.3]


def test_the_vad_silence_decides_whether_a_paused_line_is_answered_early(
        llm_server: LLMServer, tmp_path: Path) -> None:
    import io

    from lkmetrics.bench.voice import render as voice_render
    from lkmetrics.simulate.script import Behaviour

    # a 1.2 s pause mid-line: with 0.2 s of VAD silence the turn ends (0.2 s + LiveKit's
    # 0.5 s endpointing) before the second half comes; with 1.5 s the VAD never ends it
    runs = sweep_bench(llm_server, tmp_path, "min_silence_duration=0.2,1.5",
                       behaviour=Behaviour(pause_mid=1.2))
    assert [r.eot_rate() for r in runs] == [1.0, 0.0]
    assert [r.turns_ok for r in runs] == [2, 2]
    out = io.StringIO()
    voice_render.write_table("b_x", runs, [], out, recorded=False)
    text = out.getvalue()
    assert "sweep min_silence_duration" in text
    rows = [line.split() for line in text.splitlines() if line.strip().endswith("2/2")]
    assert [(r[0], r[-3], r[-2]) for r in rows] == [("0.2", "2", "1.00"), ("1.5", "0", "0.00")]


def test_the_real_vad_is_loaded_with_the_swept_silence() -> None:
    from lkmetrics.bench.voice.driver import SharedModels
    from lkmetrics.bench.voice.sweep import parse_sweep

    sweep = parse_sweep("min_silence_duration=0.8,0.3")
    assert sweep is not None
    models = SharedModels()
    base = AgentSettings(stt="fake/x", llm="test/x", tts="fake/x")
    seen = [models.load(sweep.applied(base, v))["vad"].min_silence_duration
            for v in sweep.values]
    assert seen == [0.8, 0.3]


@pytest.mark.parametrize(("spec", "message"), [
    ("min_endpointing_delay", "--sweep expects NAME=V1,V2,..."),
    ("endpointing=0.2", "--sweep: unknown setting 'endpointing'; one of min_endpointing_delay"),
    ("min_endpointing_delay=0.2,fast", "'fast' is not a number of seconds"),
    ("min_endpointing_delay=-0.1", "each value must be at least 0"),
    ("min_silence_duration=0", "each value must be above 0"),
    ("max_endpointing_delay=nan", "each value must be at least 0"),
    ("max_endpointing_delay=1e9", "at most 10 seconds"),
    ("min_silence_duration=0.3,0.3", "0.3 is given twice"),
])
def test_bad_sweep_is_one_line_exit_2(spec: str, message: str) -> None:
    result = CliRunner().invoke(app, ["bench", "voice", "--no-record", "--local", "--sweep",
                                      spec])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


def test_sweep_with_agent_is_refused() -> None:
    result = CliRunner().invoke(app, ["bench", "voice", "--no-record", "--agent", "x.py",
                                      "--sweep", "min_endpointing_delay=0.2"])
    assert result.exit_code == 2 and "--sweep sets the endpointing" in result.output
