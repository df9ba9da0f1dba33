"""`lkmetrics simulate` with the real local models: Whisper, SmolLM2 on llama.cpp, Piper."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lkmetrics.agent.server import LOCAL_MAX_TOKENS
from tests.helpers.common import subprocess_env, wait_gone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PID = re.compile(r"local LLM server at \S+, pid (\d+)")


def lkmetrics(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lkmetrics", *args], capture_output=True,
                          text=True, env=subprocess_env(), timeout=540, **kw)


def server_pid(stderr: str) -> int:
    m = PID.search(stderr)
    assert m, stderr
    return int(m.group(1))


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    home = tmp_path_factory.mktemp("home")
    return subprocess.run(
        [sys.executable, "-m", "lkmetrics", "simulate", "--local", "--format", "json",
         "--no-greet", "--no-record", "--pause", "0.3"],
        capture_output=True, text=True, timeout=540,
        env=subprocess_env(LKMETRICS_HOME=str(home)))


def test_builtin_script_measures_every_stage(builtin_run: subprocess.CompletedProcess[str]
                                             ) -> None:
    assert builtin_run.returncode == 0, builtin_run.stderr[-3000:]
    recs = records(builtin_run.stdout)  # stdout is nothing but JSON lines
    kinds = {r["kind"] for r in recs}
    assert {"session", "stt", "llm", "tts", "eou", "turn", "summary"} <= kinds
    for r in recs:
        if r["kind"] == "stt":
            assert r["duration"] > 0 and r["audio_duration"] > 1.0
        elif r["kind"] == "llm":
            assert r["ttft"] > 0 and r["duration"] > 0 and r["completion_tokens"] > 0
            assert r["completion_tokens"] <= LOCAL_MAX_TOKENS  # the local replies are capped
            assert r["prompt_tokens"] > 0
        elif r["kind"] == "tts":
            assert r["ttfb"] > 0 and r["audio_duration"] > 0
        elif r["kind"] == "eou":
            assert r["end_of_utterance_delay"] > 0 and r["transcription_delay"] > 0
        elif r["kind"] == "turn":
            for field in ("e2e_latency", "end_of_turn_delay", "llm_node_ttft", "tts_node_ttfb"):
                assert r[field] > 0, (field, r)
    turns = [r for r in recs if r["kind"] == "turn"]
    assert len(turns) == 3
    heard = turns[0]["user_text"].lower()
    assert "capital" in heard and "france" in heard, heard
    assert "week" in turns[1]["user_text"].lower()
    assert all(t["agent_text"] for t in turns)
    assert recs[-1]["kind"] == "summary" and recs[-1]["turns"] == 3


def test_local_turns_add_up_stage_by_stage(builtin_run: subprocess.CompletedProcess[str]
                                           ) -> None:
    from lkmetrics.records import STAGE_NAMES

    turns = [r for r in records(builtin_run.stdout) if r["kind"] == "turn"]
    assert len(turns) == 3
    for t in turns:
        stages = t["stages"]
        for name in ("end_of_turn", "llm_ttft", "first_sentence", "tts_ttfb"):
            assert stages[name] is not None and stages[name] >= 0, (name, stages)
        parts = sum(stages[name] or 0.0 for name in STAGE_NAMES) - stages["overlap"]
        assert parts == pytest.approx(t["e2e_latency"], abs=0.005), stages
        assert stages["first_sentence"] == pytest.approx(
            t["llm_node_ttfs"] - t["llm_node_ttft"], abs=1e-9)


def test_server_is_gone_after_a_normal_exit(builtin_run: subprocess.CompletedProcess[str]
                                            ) -> None:
    assert wait_gone(server_pid(builtin_run.stderr))


def test_wav_at_44k_stereo_is_resampled_and_understood(tmp_path: Path) -> None:
    from lkmetrics.local.speech import read_wav_pcm16_mono, synthesize_wav, write_wav_pcm16

    mono_path = tmp_path / "q.wav"
    synthesize_wav("What is the capital of France?", mono_path)
    mono = read_wav_pcm16_mono(mono_path, 44100)
    stereo = np.stack([mono, mono], axis=1).reshape(-1)
    wav = tmp_path / "q44k.wav"
    write_wav_pcm16(wav, stereo, 44100, num_channels=2)
    audio_dir = tmp_path / "audio"
    proc = lkmetrics("simulate", "--local", "--say", str(wav), "--format", "json", "--no-greet",
                     "--no-record", "--record-audio", str(audio_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    turn = next(r for r in records(proc.stdout) if r["kind"] == "turn")
    assert "capital" in turn["user_text"].lower() and "france" in turn["user_text"].lower()
    assert sorted(p.name for p in audio_dir.iterdir()) == ["turn001-agent.wav",
                                                           "turn001-user.wav"]
    agent_audio = read_wav_pcm16_mono(audio_dir / "turn001-agent.wav", 16000)
    assert len(agent_audio) > 16000 * 0.3  # the agent really spoke


def test_failed_turn_exits_1_names_it_and_stops_the_server() -> None:
    proc = lkmetrics("simulate", "--local", "--say", "Hello there.", "--timeout", "0.5",
                     "--format", "json", "--no-greet", "--no-record")
    assert proc.returncode == 1
    assert "turn 1 (Hello there.): timed out" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert wait_gone(server_pid(proc.stderr))
    assert records(proc.stdout)[-1]["kind"] == "summary"


@pytest.mark.parametrize(("sig", "code", "status"), [(signal.SIGINT, 130, "interrupted"),
                                                     (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_stops_the_server_and_keeps_the_records(tmp_path: Path, sig: int, code: int,
                                                       status: str) -> None:
    """SIGTERM is handled as Ctrl-C is (issue 8): summary in the file and the store, every
    record of the file in the store, the exit status recorded."""
    out = tmp_path / "rec.jsonl"
    db = tmp_path / "m.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lkmetrics", "simulate", "--local", "--format", "none",
         "--output", str(out), "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for the first completed turn
        if out.exists() and '"kind":"turn"' in out.read_text():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("no turn was recorded")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    assert wait_gone(server_pid(stderr))
    recs = records(out.read_text())
    assert recs[-1]["kind"] == "summary"
    assert any(r["kind"] == "turn" for r in recs)
    from lkmetrics.store import Store

    with Store.open(db) as s:
        stored = s.conn.execute("SELECT count(*) FROM records").fetchone()[0]
        (exit_status,) = s.conn.execute("SELECT exit_status FROM sessions").fetchone()
    assert stored == len(recs) and exit_status == status


def test_timed_out_turn_records_timeout(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    proc = lkmetrics("simulate", "--local", "--say", "Hello there.", "--timeout", "0.5",
                     "--format", "none", "--no-greet", "--db", str(db))
    assert proc.returncode == 1, proc.stderr[-3000:]
    from lkmetrics.store import Store

    with Store.open(db) as s:
        (exit_status,) = s.conn.execute("SELECT exit_status FROM sessions").fetchone()
    assert exit_status == "timeout"


def test_tts_none_is_refused_with_one_line() -> None:
    from typer.testing import CliRunner

    from lkmetrics.cli import app

    result = CliRunner().invoke(app, ["simulate", "--stt", "local", "--llm", "local", "--tts",
                                      "none", "--turns", "1"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: --tts none cannot be simulated")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output


def test_a_401_names_the_llm_error_not_only_the_timeout(tmp_path: Path) -> None:
    from tests.helpers.llm_server import LLMServer, Script

    server = LLMServer(Script(status=401, error="invalid api key"))
    try:
        result = lkmetrics("simulate", "--stt", "local", "--tts", "local", "--llm",
                           "x/test-model", "--llm-base-url", server.url, "--no-greet",
                           "--no-record", "--format", "json", "--say", "What time is it?",
                           "--timeout", "15")
    finally:
        server.close()
    assert result.returncode == 1, result.stderr[-3000:]
    line = next(x for x in result.stderr.splitlines() if x.startswith("turn 1"))
    # the cause, at once: the turn ends when LiveKit gives up, not when the timeout comes
    assert f"LLM at {server.url}: HTTP 401" in line and "timed out" not in line, line
