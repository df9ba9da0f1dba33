"""`lkmetrics bench voice`: the STT x LLM x TTS matrix and concurrent simulated callers with the
fake STT/TTS/VAD (scripted latencies) and the scripted LLM server; runs recorded under one bench
id; bad input is a one-line error; and one slow run of the real local models at concurrency 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lkmetrics.bench.shared import new_bench_id
from lkmetrics.bench.voice import core as voice
from lkmetrics.cli import app
from lkmetrics.config.settings import AgentSettings
from tests.helpers.common import API_KEY, API_SECRET, ROOT, subprocess_env
from tests.helpers.fakes import EnergyVAD, ScriptedSTT, ScriptedTTS, tone
from tests.helpers.llm_server import LLMServer

pytestmark = pytest.mark.timeout(180)

STT_DELAY = {"fake/fast": 0.1, "fake/slow": 0.6}
SLACK = 0.2  # what a busy 2-core machine may add to a scripted delay


def factory(server: LLMServer) -> Any:
    from livekit.plugins import openai

    from lkmetrics.agent.server import Components

    def build(settings: AgentSettings) -> Components:
        assert settings.stt is not None
        return Components(
            stt=ScriptedSTT(["Hello?"] * 10, delay=STT_DELAY[settings.stt]),
            llm=openai.LLM(model="test-model", base_url=server.url, api_key="none"),
            tts=ScriptedTTS(ttfb=0.15), vad=EnergyVAD(min_silence=0.3))

    return build


def utterance(tmp_path: Path) -> str:
    from lkmetrics.local.speech import write_wav_pcm16

    path = tmp_path / "hello.wav"
    write_wav_pcm16(path, np.concatenate([tone(0.6), np.zeros(3200, dtype=np.int16)]), 16000)
    return str(path)


def run_matrix(server: LLMServer, tmp_path: Path, concurrency: str, *fail_over: str,
               record: bool = True, fleet: list[Any] | None = None
               ) -> tuple[str, list[voice.VoiceRun], Path]:
    from lkmetrics.bench.voice import driver as voice_driver

    server.script.ttft = 0.2
    config = voice.make_config(stt=["fake/fast", "fake/slow"], llm=["test/test-model"],
                               tts=["fake/tts"], llm_base_url=server.url,
                               say=(utterance(tmp_path),), concurrency=[concurrency],
                               timeout=30, fail_over=list(fail_over))
    for s in config.stacks:
        s.turn_detection = "vad"  # the fakes need no turn-detector model
    db = tmp_path / "bench.db"
    bench_id = new_bench_id()
    runs, errors = voice_driver.run(config, bench_id, db=db, record=record,
                                    factory=factory(server), fleet=fleet or [])
    assert errors == []
    return bench_id, runs, db


def test_the_matrix_is_ranked_and_recorded_under_one_bench_id(
        llm_server: LLMServer, tmp_path: Path) -> None:
    bench_id, runs, db = run_matrix(llm_server, tmp_path, "1,3",
                                    "eou.transcription_delay.p50=0.5s")
    assert [(r.stt, r.concurrency) for r in runs] == [
        ("fake/fast", 1), ("fake/fast", 3), ("fake/slow", 1), ("fake/slow", 3)]
    for run in runs:
        assert run.errors == 0 and run.planned == run.concurrency
        assert len(run.session_ids) == run.concurrency
        delay = STT_DELAY[str(run.stt)]
        for t in run.values("transcription_delay"):
            assert 0.3 + delay <= t < 0.3 + delay + SLACK  # VAD hangover + the STT's delay
        # the caller hears no sooner than LiveKit says the agent answered
        for turn in run.turns:
            assert turn["heard_latency"] >= turn["e2e_latency"] - 0.005
    # the 3 callers talked at once: their agents' replies overlap in time
    spans = [(t["started_speaking_at"], t["stopped_speaking_at"]) for t in runs[1].turns]
    assert len(spans) == 3 and max(s for s, _ in spans) < min(e for _, e in spans)

    checked = voice.check(runs, voice.make_config(
        stt=None, llm=None, tts=None, fail_over=["eou.transcription_delay.p50=0.5s"]).budgets)
    assert voice.ranked(runs) == ["fake/fast | test/test-model | fake/tts",
                                  "fake/slow | test/test-model | fake/tts"]
    # the slow STT breaks the budget at every concurrency; the fast one holds it up to 3
    assert voice.knee(runs, checked) == {"fake/fast | test/test-model | fake/tts": 3,
                                         "fake/slow | test/test-model | fake/tts": None}
    doc = voice.document(bench_id, runs, checked)
    assert doc["kind"] == "bench_voice" and doc["schema"] == 1 and doc["bench_id"] == bench_id
    assert [c["max_concurrency_passed"] for c in doc["combinations"]] == [3, None]
    assert set(doc["runs"][0]) >= {"stt", "llm", "tts", "concurrency", "turns", "errors", "e2e",
                                   "heard", "eou_delay", "transcription_delay", "llm_ttft",
                                   "tts_ttfb", "wall_s", "session_ids", "within_budgets"}

    # the store: 8 sessions under the bench id; sessions shows it, report --bench selects it
    runner = CliRunner()
    listed = runner.invoke(app, ["sessions", "--db", str(db), "--format", "json"])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 8 and {r["bench_id"] for r in rows} == {bench_id}
    assert {r["command"] for r in rows} == {"bench voice"}
    table = runner.invoke(app, ["sessions", "--db", str(db)], env={"COLUMNS": "200"})
    assert f"bench voice {bench_id}" in table.stdout
    report = runner.invoke(app, ["report", "--bench", bench_id[:5], "--db", str(db),
                                 "--format", "json"])
    assert report.exit_code == 0, report.output
    doc = json.loads(report.stdout)
    assert doc["scope"] == f"bench {bench_id} (8 sessions)"
    heard = next(f for f in doc["figures"] if f["figure"] == "heard")
    assert heard["count"] == 8
    missing = runner.invoke(app, ["report", "--bench", "b_nope", "--db", str(db)])
    assert missing.exit_code != 0 and "no bench 'b_nope'" in missing.output


def test_the_table_shows_the_load_curve(llm_server: LLMServer, tmp_path: Path) -> None:
    import io

    from lkmetrics.bench.voice import render as voice_render

    bench_id, runs, _ = run_matrix(llm_server, tmp_path, "1,2", record=False)
    out = io.StringIO()
    voice_render.write_table(bench_id, runs, [], out, recorded=False)
    text = out.getvalue()
    assert text.index("fake/fast") < text.index("fake/slow")  # ranked
    assert "no turn failed up to 2 callers (of 1, 2)" in text


@pytest.mark.parametrize("args, message", [
    (["--repeat", "0"], "--repeat must be at least 1"),
    (["--concurrency", "0"], "--concurrency must be at least 1"),
    (["--concurrency", "two"], "--concurrency expects whole numbers"),
    (["--stt", "none"], "needs an STT"),
    (["--tts", "none"], "needs a TTS"),
    (["--llm", "gpt4"], "--llm expects PROVIDER/MODEL"),
    (["--fail-over", "e2e=1s"], "--fail-over expects FIGURE.STAT=LIMIT"),
    (["--timeout", "0"], "--timeout must be positive"),
    (["--format", "csv"], "--format 'csv' does not apply"),
    (["--barge-in", "0"], "--barge-in takes seconds above 0"),
    (["--pause-mid", "nan"], "--pause-mid takes seconds above 0"),
    (["--barge-in", "1", "--say", "Hi."], "(--say twice, or --repeat 2)"),
    (["--scenario", "nope.toml"], "--scenario nope.toml: no such file"),
    (["--scenario", "nope.toml", "--say", "Hi."], "--scenario and --say both say"),
])
def test_bad_input_is_a_one_line_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bench", "voice", "--no-record", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_inference_stacks_need_livekit_credentials() -> None:
    result = CliRunner().invoke(app, ["bench", "voice", "--no-record"])
    assert result.exit_code == 2 and "LIVEKIT_API_KEY is not set" in result.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_local_models_with_two_callers_at_once(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    proc = subprocess.run(
        [sys.executable, "-m", "lkmetrics", "bench", "voice", "--local", "--concurrency", "2",
         "--say", str(ROOT / "lkmetrics" / "data" / "question1.wav"),
         "--format", "json", "--db", str(db), "--timeout", "120"],
        capture_output=True, text=True, env=subprocess_env(), timeout=880)
    # on a loaded 2-core machine a caller may wait past its timeout: that is a counted failed
    # turn (exit 1), which is what the load curve is for; anything else is a bug
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    (run,) = doc["runs"]
    assert (run["stt"], run["llm"], run["tts"], run["concurrency"]) == (
        "local", "local", "local", 2)
    assert run["turns"] == 2 and len(run["session_ids"]) == 2
    assert (proc.returncode == 1) == (run["errors"] > 0)
    assert run["errors"] < 2, run["first_error"]  # at least one caller got its reply
    assert run["e2e"]["p50"] > 0 and run["heard"]["p50"] > 0
    assert run["heard"]["p50"] >= run["e2e"]["p50"] - 0.05


def test_one_prometheus_endpoint_covers_every_run_of_a_bench(
        llm_server: LLMServer, tmp_path: Path) -> None:
    import urllib.request

    from lkmetrics.bench.shared import fleet_writers
    from lkmetrics.config.options import FleetOptions

    config = voice.make_config(stt=["fake/fast"], llm=["test/test-model"], tts=["fake/tts"],
                               fail_over=["e2e.p95=1.25s"])
    with fleet_writers(FleetOptions(prometheus_port=0), config.budgets) as shared:
        (prom,) = [w.writer for w in shared]
        _, runs, _ = run_matrix(llm_server, tmp_path, "1,2", record=False, fleet=shared)
        turns = sum(r.turns_ok for r in runs)
        assert turns == 2 * 3  # two stacks, 1 + 2 callers
        with urllib.request.urlopen(f"http://127.0.0.1:{prom.port}/metrics", timeout=5) as r:
            body = r.read().decode()
    assert 'lkmetrics_turns_total{model="test-model",provider="127.0.0.1"} 6.0' in body
    assert 'le="1.25"' in body  # the --fail-over limit is a bucket


def test_bench_voice_refuses_a_privileged_prometheus_port(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "voice", "--stt", "fake/x", "--llm", "a/b",
                                      "--tts", "fake/y", "--llm-base-url", "http://127.0.0.1:9/v1",
                                      "--prometheus-port", "80", "--no-record"],
                                 env={"LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET})
    assert result.exit_code == 2, result.output
    assert "privileged" in result.output and "Traceback" not in result.output


def conversation_bench(server: LLMServer, tmp_path: Path, behaviour: Any,
                       lines: int, scenario: str | None = None) -> list[voice.VoiceRun]:
    from lkmetrics.bench.voice import driver as voice_driver
    from lkmetrics.local.speech import write_wav_pcm16

    server.script.ttft = 0.1
    server.script.text = "word " * 60  # 300 characters: 3 s of scripted TTS audio
    path = tmp_path / "long.wav"
    write_wav_pcm16(path, np.concatenate([tone(1.6), np.zeros(4000, dtype=np.int16)]), 16000)
    scenario_file = None
    if scenario is not None:  # the lines come from a scenario file beside the WAV
        scenario_file = tmp_path / "talk.toml"
        scenario_file.write_text(scenario)
    config = voice.make_config(stt=["fake/fast"], llm=["test/test-model"], tts=["fake/tts"],
                               llm_base_url=server.url,
                               say=(f"{path}=hello there",) * lines if scenario is None else (),
                               timeout=40, behaviour=behaviour, scenario=scenario_file)
    for s in config.stacks:
        s.turn_detection = "vad"
    runs, errors = voice_driver.run(config, new_bench_id(), db=None, record=False,
                                    factory=factory(server))
    assert errors == [] and [r.errors for r in runs] == [0]
    return runs


SCENARIO = """\
[[turn]]
wav = "long.wav"
words = "hello there"
barge_in = 1.0

[[turn]]
wav = "long.wav"
words = "hello there"
"""


@pytest.mark.parametrize("how", ["flag", "scenario"])
def test_conversation_columns_beside_latency(llm_server: LLMServer, tmp_path: Path,
                                             how: str) -> None:
    import io

    from lkmetrics.bench.voice import render as voice_render
    from lkmetrics.simulate.script import Behaviour

    # --barge-in (or a scenario's barge_in) reaches the callers: 1.0 s into a 3 s reply, the
    # next line; LiveKit yields after its 0.5 s min_interruption_duration. The STT hears
    # "Hello?" for "hello there".
    [run] = (conversation_bench(llm_server, tmp_path, Behaviour(barge_in=1.0), 2)
             if how == "flag" else
             conversation_bench(llm_server, tmp_path, None, 2, scenario=SCENARIO))
    doc = voice.document("b_x", [run], [])
    conversation = doc["runs"][0]["conversation"]
    yielded = conversation["turn.time_to_yield"]
    assert yielded["count"] == 1 and 0.48 <= yielded["p50"] <= 0.58
    assert conversation["stt.wer"]["mean"] == pytest.approx(0.5)  # one word of two missed
    assert "eot_mispredictions" not in conversation  # no --pause-mid: not measured
    out = io.StringIO()
    voice_render.write_table("b_x", [run], [], out, recorded=False)
    shown = out.getvalue()
    # three tables within 80 columns, nothing cut: latency, stages, then the conversation
    assert max(map(len, shown.splitlines())) <= 80 and "…" not in shown, shown
    conversation = shown.split("stages: p50")[1]
    header = conversation.split("━")[0]  # the headers, wrapped over two lines
    assert "yield" in header and "wer" in header and "premature" not in header
    row = next(line for line in conversation.splitlines() if line.strip().startswith("1 "))
    assert f"{yielded['p50'] * 1000:.0f} ms" in row and "0.500" in row
    assert any(line.rstrip().endswith("0/2") for line in shown.split("stages: p50")[0]
               .splitlines())  # the latency table's "failed" column


def test_pause_mid_reaches_the_callers_as_premature_ends_of_turn(
        llm_server: LLMServer, tmp_path: Path) -> None:
    from lkmetrics.simulate.script import Behaviour

    # a 1.5 s pause in a 1.6 s line: 0.3 s of VAD silence and 0.5 s of endpointing end the
    # turn before the second half comes, in every line
    [run] = conversation_bench(llm_server, tmp_path, Behaviour(pause_mid=1.5), 2)
    early = run.conversation()["eot_mispredictions"]
    assert early["sum"] == 2 and run.turns_ok == 2 and run.eot_rate() == 1.0
