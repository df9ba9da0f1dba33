"""`lkmetrics bench voice --agent TARGET`: the user's agent (tests/agent/fixtures/shop, with
scripted STT/TTS and its LLM at the scripted server through LIVEKIT_INFERENCE_URL) under the
load curve; the flags replace its components; bad targets fail before anything starts."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.common import API_KEY, API_SECRET, TESTS, subprocess_env
from tests.helpers.fakes import tone_wav
from tests.helpers.llm_server import LLMServer

SHOP = TESTS / "agent" / "fixtures" / "shop" / "agent.py"
TOOL_SECONDS = 0.3
LLM_TTFT = 0.2
SLACK = 0.15  # what a busy 2-core machine may add to a scripted delay

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return tone_wav(tmp_path / "tone.wav")


def bench(server: LLMServer, db: Path, *args: str, open_files: int | None = None
          ) -> subprocess.CompletedProcess[str]:
    """``bench voice`` in a subprocess; ``open_files``: its RLIMIT_NOFILE (``ulimit -n``)."""
    env = subprocess_env(LIVEKIT_INFERENCE_URL=server.url, LIVEKIT_API_KEY=API_KEY,
                         LIVEKIT_API_SECRET=API_SECRET, FIXTURE_TOOL_SECONDS=str(TOOL_SECONDS))

    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    return subprocess.run([sys.executable, "-m", "lkmetrics", "bench", "voice", "--format",
                           "json", "--db", str(db), "--timeout", "30", *args],
                          capture_output=True, text=True, env=env, timeout=230,
                          preexec_fn=limit)


def exported(db: Path) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "lkmetrics", "export", "--db", str(db)],
                         capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_the_load_curve_runs_the_users_agent(llm_server: LLMServer, wav: Path,
                                             tmp_path: Path) -> None:
    llm_server.script.ttft = LLM_TTFT
    # each of the 1 + 2 callers says one utterance, and the agent answers it with its tool
    llm_server.script.tool_calls = ["lookup_stock"] * 3
    db = tmp_path / "bench.db"
    result = bench(llm_server, db, "--agent", str(SHOP), "--concurrency", "1,2",
                   "--say", str(wav), "--fail-over", f"tool.duration.max={TOOL_SECONDS + SLACK}s")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "replaced" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["agent"] == str(SHOP) and doc["agent_target"] == "agent:server"
    assert [(r["concurrency"], r["turns"], r["errors"]) for r in doc["runs"]] == [
        (1, 1, 0), (2, 2, 0)]
    for run in doc["runs"]:  # the agent's own components, as its sessions recorded them
        assert (run["stt"], run["llm"], run["tts"]) == (
            "fake/scripted", "openai/gpt-4.1-mini", "fake/scripted")
        assert run["e2e"]["p50"] is not None and run["heard"]["p50"] is not None
    assert [c["max_concurrency_passed"] for c in doc["combinations"]] == [2]
    # the budgets over the agent's tool time are checked on each run, and held
    assert [r["within_budgets"] for r in doc["runs"]] == [True, True]

    recs = exported(db)
    sessions = [r for r in recs if r["kind"] == "session"]
    assert len(sessions) == 3
    assert {(s["concurrency"], s["caller"]) for s in sessions} == {(1, 1), (2, 1), (2, 2)}
    for s in sessions:
        assert s["agent"] == str(SHOP) and s["agent_target"] == "agent:server"
        assert s["bench_id"] == doc["bench_id"] and s["command"] == "bench voice"
        assert s["tools"] == ["lookup_stock"]
    tools = [r for r in recs if r["kind"] == "tool"]
    assert len(tools) == 3  # one per caller, each in its own session
    assert len({t["session_id"] for t in tools}) == 3
    for tool in tools:
        assert tool["name"] == "lookup_stock" and tool["ok"] is True
        assert TOOL_SECONDS <= tool["duration"] < TOOL_SECONDS + SLACK
    turns = [r for r in recs if r["kind"] == "turn" and r.get("e2e_latency") is not None]
    assert {t["agent"] for t in turns} == {"Shopkeeper"}
    with_tools = [t for t in turns if t.get("tools")]
    assert len(with_tools) == 3
    for turn in with_tools:  # the request that asked for the tool, and the tool itself
        assert TOOL_SECONDS + LLM_TTFT <= turn["stages"]["tools"] < (
            TOOL_SECONDS + LLM_TTFT + 2 * SLACK)


def test_flags_replace_the_agents_llm_once_per_bench(llm_server: LLMServer, wav: Path,
                                                     tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    result = bench(llm_server, db, "--agent", str(SHOP), "--concurrency", "2",
                   "--llm", "test/model-a", "--llm", "test/model-b",
                   "--llm-base-url", llm_server.url, "--say", str(wav))
    assert result.returncode == 0, result.stderr
    replaced = [line for line in result.stderr.splitlines() if "replaced by" in line]
    # two combinations of two callers each: one line per replacement, not one per caller
    assert sorted(replaced) == [
        f"lkmetrics: the agent's LLM openai/gpt-4.1-mini replaced by test/{m} at "
        f"{llm_server.url} (--llm)" for m in ("model-a", "model-b")]
    doc = json.loads(result.stdout)
    assert sorted((r["llm"], r["stt"], r["errors"]) for r in doc["runs"]) == [
        ("test/model-a", "fake/scripted", 0), ("test/model-b", "fake/scripted", 0)]
    models = {body["model"] for body in llm_server.script.requests}
    assert models == {"model-a", "model-b"}  # the agent's own model was never asked
    sessions = [r for r in exported(db) if r["kind"] == "session"]
    assert len(sessions) == 4 and {s["llm"] for s in sessions} == {"test/model-a",
                                                                    "test/model-b"}


@pytest.mark.parametrize(("target", "message"), [
    ("missing.py", "no such file"),
    (str(TESTS / "agent" / "fixtures" / "scripted.py"),
     "has no AgentServer, WorkerOptions or entrypoint"),
    (f"{SHOP}:nope", "has no 'nope'"),
])
def test_a_bad_target_is_one_line_exit_2(llm_server: LLMServer, tmp_path: Path, target: str,
                                         message: str) -> None:
    db = tmp_path / "bench.db"
    result = bench(llm_server, db, "--agent", target)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert result.stdout == "" and not llm_server.script.requests


@pytest.mark.parametrize("flag", [["--instructions", "Be brief."], ["--greet"]])
def test_instructions_or_greet_with_agent_is_refused(llm_server: LLMServer, tmp_path: Path,
                                                     flag: list[str]) -> None:
    result = bench(llm_server, tmp_path / "bench.db", "--agent", str(SHOP), *flag)
    assert result.returncode == 2, result.stderr
    assert "applies to the built-in agent" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_too_many_open_files_is_the_one_line_cause_not_a_timeout(
        llm_server: LLMServer, wav: Path, tmp_path: Path) -> None:
    # under `ulimit -n 16`, 100 callers at once: their LLM requests cannot get a socket
    # (EMFILE), LiveKit retries and gives up; the turns end then, not at the 30 s timeout.
    # (The process holds ~10 files before the first request. At 64, one run in two had
    # room enough for every request to get through on LiveKit's retries: no EMFILE at all.)
    started = time.monotonic()
    result = bench(llm_server, tmp_path / "bench.db", "--agent", str(SHOP), "--no-record",
                   "--concurrency", "100", "--say", str(wav), open_files=16)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "failed to emit" not in result.stderr, \
        result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0] == result.stderr.splitlines()[-1], errors
    assert "Too many open files (EMFILE)" in errors[0] and "timed out" not in errors[0]
    (run,) = json.loads(result.stdout)["runs"]
    assert run["errors"] == run["turns"] == 100
    assert "Too many open files" in run["first_error"]
    assert elapsed < 30 + 20  # the turns' timeout (30 s) was not waited out in full + start


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"),
                                                   (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_keeps_the_runs_that_finished(llm_server: LLMServer, wav: Path, tmp_path: Path,
                                               sig: int, code: int, name: str) -> None:
    # run 1 (one caller) makes two requests, its greeting and its answer; then every request
    # hangs, so run 2 (two callers) is under way when the signal comes
    env = subprocess_env(LIVEKIT_INFERENCE_URL=llm_server.url, LIVEKIT_API_KEY=API_KEY,
                         LIVEKIT_API_SECRET=API_SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "lkmetrics", "bench", "voice", "--format",
                             "json", "--db", str(tmp_path / "bench.db"), "--agent", str(SHOP),
                             "--concurrency", "1,2", "--say", str(wav)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(llm_server.script.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the answer's request has begun its 0.05 s wait
        llm_server.script.ttft = 60.0
        while len(llm_server.script.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.decode().splitlines()
    assert proc.returncode == code, err
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1 and name in errors[0] and "bench voice" in errors[0], lines
    assert b"Traceback" not in err
    doc = json.loads(out)  # the run that finished, as it would have been written
    assert [(r["concurrency"], r["turns"], r["errors"]) for r in doc["runs"]] == [(1, 1, 0)]
    assert doc["stopped_by"] == name
    sessions = subprocess.run([sys.executable, "-m", "lkmetrics", "sessions", "--db",
                               str(tmp_path / "bench.db"), "--format", "json"],
                              capture_output=True, text=True, env=subprocess_env(), timeout=60)
    statuses = sorted(json.loads(line)["exit_status"] for line in sessions.stdout.splitlines())
    assert statuses == sorted(["ok", *["terminated" if sig == signal.SIGTERM
                                       else "interrupted"] * 2])
