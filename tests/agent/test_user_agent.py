"""`--agent TARGET`: agents written the way users write them (tests/agent/fixtures/), run
unmodified by `simulate --agent` against the scripted LLM server (LIVEKIT_INFERENCE_URL), with
scripted STT and TTS; the measured values are held to the injected ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.common import API_KEY, API_SECRET, TESTS, subprocess_env
from tests.helpers.fakes import tone_wav
from tests.helpers.llm_server import LLMServer

AGENTS = TESTS / "agent" / "fixtures"
TOOL_SECONDS = 0.3
LLM_TTFT = 0.2

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return tone_wav(tmp_path / "tone.wav")


def simulate(server: LLMServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = subprocess_env(LIVEKIT_INFERENCE_URL=server.url, LIVEKIT_API_KEY=API_KEY,
                          LIVEKIT_API_SECRET=API_SECRET,
                          FIXTURE_TOOL_SECONDS=str(TOOL_SECONDS), **env)
    return subprocess.run([sys.executable, "-m", "lkmetrics", "simulate", "--format", "json",
                           "--pause", "0.3", *args], capture_output=True, text=True, env=full,
                          timeout=170)


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def added_up(turn: dict[str, Any]) -> float:
    stages = turn["stages"]
    parts = ("end_of_turn", "tools", "llm_ttft", "first_sentence", "tts_ttfb", "playback",
             "unexplained")
    return sum(stages[p] or 0.0 for p in parts) - (stages["overlap"] or 0.0)


def test_tool_calling_agent_server_is_measured(llm_server: LLMServer, wav: Path,
                                               tmp_path: Path) -> None:
    llm_server.script.ttft = LLM_TTFT
    llm_server.script.tool_calls = ["lookup_stock"]
    report = tmp_path / "report.jsonl"
    result = simulate(llm_server, "--agent", str(AGENTS / "shop" / "agent.py"), "--say",
                      str(wav), "--say", str(wav), FIXTURE_REPORT=str(report))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    recs = records(result.stdout)
    (session,) = [r for r in recs if r["kind"] == "session"]
    assert session["agent"] == str(AGENTS / "shop" / "agent.py")
    assert session["agent_target"] == "agent:server"
    assert session["tools"] == ["lookup_stock"]
    assert session["stt"] == "fake/scripted" and session["llm"] == "openai/gpt-4.1-mini"
    (tool,) = [r for r in recs if r["kind"] == "tool"]
    assert tool["name"] == "lookup_stock" and tool["ok"] is True
    assert TOOL_SECONDS <= tool["duration"] < TOOL_SECONDS + 0.1
    turns = {t["turn"]: t for t in recs if t["kind"] == "turn"}
    assert all(t["agent"] == "Shopkeeper" for t in turns.values())
    answered = turns[tool["turn"]]
    assert answered["tools"][0]["name"] == "lookup_stock"
    print("DEBUG", json.dumps(answered), json.dumps(tool))
    # the tools stage: the LLM request that asked for the tool, and the tool itself
    assert TOOL_SECONDS + LLM_TTFT <= answered["stages"]["tools"] < TOOL_SECONDS + LLM_TTFT + 0.2
    for turn in turns.values():
        if turn["e2e_latency"] is not None:
            assert added_up(turn) == pytest.approx(turn["e2e_latency"], abs=1e-6)
    assert recs[-1]["kind"] == "summary"
    assert recs[-1]["figures"]["tool.duration"]["count"] == 1
    # the agent's own handler, shutdown callback and on_session_end still ran
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert {"on_session_end": True} in lines
    (own,) = [line for line in lines if "metrics" in line]
    assert "llm_metrics" in own["metrics"] and own["lookups"] == ["apples"]


def test_worker_options_entrypoint(llm_server: LLMServer, wav: Path) -> None:
    result = simulate(llm_server, "--agent", f"{AGENTS / 'worker_agent.py'}:opts", "--say",
                      str(wav))
    assert result.returncode == 0, result.stderr
    recs = records(result.stdout)
    (session,) = [r for r in recs if r["kind"] == "session"]
    assert session["agent_target"] == "worker_agent:opts"
    (turn,) = [r for r in recs if r["kind"] == "turn"]
    assert turn["e2e_latency"] is not None and turn["agent"] == "Agent"


def test_handoff_names_the_agent_that_answered(llm_server: LLMServer, wav: Path) -> None:
    llm_server.script.tool_calls = ["transfer_to_specialist", ""]
    result = simulate(llm_server, "--agent", str(AGENTS / "handoff_agent.py"), "--say",
                      str(wav), "--say", str(wav))
    assert result.returncode == 0, result.stderr
    recs = records(result.stdout)
    (tool,) = [r for r in recs if r["kind"] == "tool"]
    assert tool["name"] == "transfer_to_specialist" and tool["agent"] == "Receptionist"
    agents = [t["agent"] for t in recs if t["kind"] == "turn"]
    assert agents[-1] == "Specialist"


@pytest.mark.parametrize(("target", "message"), [
    ("missing.py", "no such file"),
    ("README.md", "is not a Python file"),
    ("agent/fixtures/shop/agent.py:nope", "has no 'nope'"),
    ("agent/fixtures/scripted.py", "has no AgentServer, WorkerOptions or entrypoint"),
])
def test_bad_target_is_one_line_exit_2(llm_server: LLMServer, target: str,
                                       message: str) -> None:
    path = target if target.startswith("missing") else str(TESTS / target)
    if target == "README.md":
        path = str(TESTS.parent / "README.md")
    result = simulate(llm_server, "--agent", path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_instructions_with_agent_is_refused(llm_server: LLMServer) -> None:
    result = simulate(llm_server, "--agent", str(AGENTS / "worker_agent.py"),
                      "--instructions", "Be brief.")
    assert result.returncode == 2
    assert "--instructions applies to the built-in agent" in result.stderr


def test_failing_import_shows_their_traceback(llm_server: LLMServer, tmp_path: Path) -> None:
    agent = tmp_path / "broken.py"
    agent.write_text("import json\n\ndef helper():\n    raise RuntimeError('boom')\n\n"
                     "helper()\n")
    result = simulate(llm_server, "--agent", str(agent))
    assert result.returncode == 1
    assert "RuntimeError: boom" in result.stderr and str(agent) in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: importing the module")
    assert "lkmetrics/agent/user.py" not in result.stderr  # their frames, not ours


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("example", ["weather_agent.py", "worker_options.py", "handoff.py"])
def test_examples_run_offline_with_local_models(example: str) -> None:
    """examples/agents/ as written, their LiveKit Inference models replaced by --local."""
    result = subprocess.run(
        [sys.executable, "-m", "lkmetrics", "simulate", "--format", "json", "--local",
         "--agent", str(TESTS.parent / "examples" / "agents" / example),
         "--say", "What is the weather in Paris?"],
        capture_output=True, text=True, env=subprocess_env(), timeout=590)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for stage in ("STT", "LLM", "TTS"):
        assert f"{stage} " in result.stderr and "replaced by local (--local)" in result.stderr
    turns = [r for r in records(result.stdout) if r["kind"] == "turn"]
    answered = [t for t in turns if t["e2e_latency"] is not None]
    assert answered, result.stdout
    for turn in answered:
        assert added_up(turn) == pytest.approx(turn["e2e_latency"], abs=1e-6)


def test_a_pipe_named_like_an_agent_is_refused_before_anything_starts(tmp_path: Path) -> None:
    fifo = tmp_path / "agent.py"
    os.mkfifo(fifo)  # importing it would wait for a writer for ever
    result = subprocess.run([sys.executable, "-m", "lkmetrics", "simulate", "--agent", str(fifo),
                             "--local"], capture_output=True, text=True, env=subprocess_env(),
                            timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a regular file" in lines[0], result.stderr
