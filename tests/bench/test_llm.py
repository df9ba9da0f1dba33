"""`lkmetrics bench llm` against the local scripted OpenAI-compatible server (tests/llm_server.py):
the measured TTFT, ITL and TPOT match the injected ones, concurrent requests overlap, failed
requests are counted, runs are recorded in the store, and bad input is a one-line error."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lkmetrics.bench.llm.core import RequestResult, RunResult, parse_prompts_text
from lkmetrics.bench.shared import parse_concurrency
from lkmetrics.cli import app
from lkmetrics.errors import UsageError
from lkmetrics.figures import REQUEST_FIGURES
from tests.helpers.common import API_KEY, API_SECRET, TESTS, subprocess_env
from tests.helpers.llm_server import LLMServer

TOLERANCE = 0.010  # the bound: percentiles within 10 ms of the injected values
# TTFT also holds what this VM takes to deliver the first event after the wait, and the HTTP
# client stack's own time, neither the same from one hour to the next: on 2026-12-06, the same
# scripted server (0.1 s injected) gave a raw http.client 106-117 ms, the openai SDK (what
# LiveKit's plugin uses) 112-137 ms, and bench llm's TTFT mean 110-155 ms (under 110 ms the
# day before), 24-49 ms over the raw client's in the same minute. So TTFT is held to a raw
# client's, measured beside it: from 10 ms under it to CLIENT_STACK over it (a TTFT taken at
# the wrong end, without the wait or at the last token, is still 100-180 ms off).
CLIENT_STACK = 0.070


def raw_ttft(url: str, n: int = 8) -> float:
    """The median time to the first content event for a bare http.client on ``url``."""
    import http.client
    import statistics
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    body = json.dumps({"model": "m", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    times = []
    for _ in range(n):
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
        started = time.perf_counter()
        conn.request("POST", f"{parts.path}/chat/completions", body,
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        while b'"content"' not in response.fp.readline():
            pass
        times.append(time.perf_counter() - started)
        conn.close()
    return statistics.median(times)
STATS = ("mean", "p50", "p90", "p95", "p99", "max")

pytestmark = pytest.mark.timeout(120)


def bench(*args: str, db: Path | None = None) -> Any:
    """Run `lkmetrics bench llm ARGS` in-process; the click Result."""
    argv = ["bench", "llm", *args]
    if db is not None:
        argv += ["--db", str(db)]
    elif "--no-record" not in args:
        argv.append("--no-record")
    return CliRunner().invoke(app, argv)


def bench_json(server: LLMServer, *args: str, db: Path | None = None) -> tuple[Any, dict[str, Any]]:
    result = bench("--llm-base-url", server.url, "--llm", "x/test-model", "--format", "json",
                   *args, db=db)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.output  # exactly one JSON document
    return result, json.loads(lines[0])


# -- the figures ----------------------------------------------------------------------------


@contextlib.contextmanager
def server_process(*args: str) -> Iterator[str]:
    """tests/llm_server.py in its own process (no GIL shared with the client); its base URL."""
    proc = subprocess.Popen([sys.executable, str(TESTS / "helpers" / "llm_server.py"), *args],
                            stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def test_ttft_itl_tpot_match_the_injected_values() -> None:
    with server_process("--ttft", "0.1", "--gap", "0.02", "--tokens", "10") as url:
        reference = raw_ttft(url)
        result = bench("--llm-base-url", url, "--llm", "x/test-model", "--format", "json",
                       "-n", "20", "--warmup", "1")
    assert 0.1 <= reference < 0.15, reference  # the server waits the injected 0.1 s
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.output  # exactly one JSON document
    doc = json.loads(lines[0])
    assert doc["kind"] == "bench_llm" and doc["schema"] == 1
    (run,) = doc["runs"]
    assert run["model"] == "x/test-model" and run["concurrency"] == 1
    assert run["provider"] == url.split("//")[1].removesuffix("/v1")
    assert run["requests"] == 20 and run["errors"] == 0 and run["first_error"] is None
    for name, injected in (("ttft", reference), ("itl", 0.02), ("tpot", 0.02)):
        assert set(run[name]) == set(STATS)
        bound = CLIENT_STACK if name == "ttft" else TOLERANCE
        for stat in ("mean", "p50", "p90"):
            assert 0 <= run[name][stat] - injected + TOLERANCE <= bound + TOLERANCE, (
                name, stat, run[name])  # never under the injected value by more than 10 ms
        # the tail of 20 requests is one or two of them: a scheduler hiccup on a shared
        # 2-core machine must not fail the test, a systematic error still does
        for stat in ("p95", "p99"):
            assert -TOLERANCE <= run[name][stat] - injected <= bound + 2 * TOLERANCE, (
                name, stat, run[name])
        # the max is the one worst value (of 180 gaps for ITL): bounded, not pinned (a CI run
        # saw one 55 ms gap while other work shared the cores)
        assert injected - TOLERANCE <= run[name]["max"] <= injected + 0.1, (name, run[name])
    # latency = TTFT + 9 gaps
    excess = run["latency"]["p50"] - (reference + 9 * 0.02)
    assert -2 * TOLERANCE <= excess <= CLIENT_STACK + 2 * TOLERANCE
    assert run["output_tokens"] == 20 * 10  # from the usage chunk
    assert run["wall_s"] == pytest.approx(20 * run["latency"]["mean"], rel=0.1)
    assert run["output_tokens_per_s"] == pytest.approx(200 / run["wall_s"])
    assert run["requests_per_s"] == pytest.approx(20 / run["wall_s"])


def test_requests_sent(llm_server: LLMServer) -> None:
    result, _ = bench_json(llm_server, "-n", "2", "--warmup", "2", "--max-tokens", "7")
    assert result.exit_code == 0, result.output
    # warm-up requests reached the server but were not counted
    assert len(llm_server.script.requests) == 4
    sent = llm_server.script.requests[0]
    assert sent["max_completion_tokens"] == 7 and sent["stream"] is True
    assert sent["model"] == "test-model"  # the part of --llm after the first '/'


def test_concurrent_requests_overlap(llm_server: LLMServer) -> None:
    llm_server.script.ttft = 0.3
    llm_server.script.gap = 0.01
    llm_server.script.tokens = 4
    result, doc = bench_json(llm_server, "-n", "8", "--concurrency", "1,8", "--warmup", "0")
    assert result.exit_code == 0, result.output
    serial, parallel = doc["runs"]
    assert (serial["concurrency"], parallel["concurrency"]) == (1, 8)
    one = serial["latency"]["mean"]
    assert serial["wall_s"] >= 8 * 0.3
    # all eight in flight at once: the run takes about one request's time, not eight
    assert parallel["wall_s"] < 2 * one, (parallel["wall_s"], one)
    assert parallel["requests_per_s"] > 3 * serial["requests_per_s"]
    # every request waited its own TTFT, not the ones before it (queued, half of them would
    # wait 0.6 s or more); over 0.3 s: the client stack, eight streams at once on 2 cores
    # (0.39 s in a CI run of 2026-12-06, see CLIENT_STACK)
    assert 0.3 - TOLERANCE <= parallel["ttft"]["p50"] < 0.3 + 0.15


def test_failed_requests_are_counted_and_the_run_continues(llm_server: LLMServer,
                                                           tmp_path: Path) -> None:
    llm_server.script.ttft = 0.02
    llm_server.script.fail_every = 3
    db = tmp_path / "m.db"
    # warm-up is request 1; the counted ones are requests 2..10, of which 3, 6, 9 fail
    result, doc = bench_json(llm_server, "-n", "9", "--concurrency", "1", db=db)
    assert result.exit_code == 1
    (run,) = doc["runs"]
    assert run["requests"] == 9 and run["errors"] == 3
    assert "scripted failure" in run["first_error"]
    assert run["ttft"]["p50"] is not None and run["output_tokens"] == 6 * 8
    # no retries: exactly one HTTP request per bench request (+1 warm-up)
    assert len(llm_server.script.requests) == 10
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "3 of 9 requests failed" in errors[0], result.stderr
    # the run was recorded: its successful requests as llm records, exit status error
    sessions = CliRunner().invoke(app, ["sessions", "--db", str(db), "--format", "json"])
    (session,) = [json.loads(line) for line in sessions.stdout.splitlines()]
    assert session["command"] == "bench llm" and session["exit_status"] == "error"
    # the model identity behind --llm-base-url: the server's host, never its port
    assert session["id"] == run["session_id"] and session["llm"] == "127.0.0.1/test-model"
    exported = CliRunner().invoke(app, ["export", run["session_id"], "--db", str(db)])
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert kinds == ["session"] + ["llm"] * 6 + ["summary"]


def test_every_run_is_a_recorded_session_for_report_and_compare(llm_server: LLMServer,
                                                                tmp_path: Path) -> None:
    llm_server.script.ttft = 0.1
    db = tmp_path / "m.db"
    result = bench("--llm-base-url", llm_server.url, "--llm", "x/model-a", "--llm",
                   "x/model-b", "-n", "4", "--concurrency", "1,2", "--format", "json", db=db)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["model"], r["concurrency"]) for r in runs] == [
        ("x/model-a", 1), ("x/model-a", 2), ("x/model-b", 1), ("x/model-b", 2)]
    assert len({r["session_id"] for r in runs}) == 4
    assert [b["model"] for b in llm_server.script.requests] == ["model-a"] * 10 + ["model-b"] * 10

    exported = CliRunner().invoke(app, ["export", runs[0]["session_id"], "--db", str(db)])
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["kind"] for r in records] == ["session"] + ["llm"] * 4 + ["summary"]
    session = records[0]
    assert session["command"] == "bench llm" and session["llm"] == "x/model-a"
    assert session["concurrency"] == 1 and session["requests"] == 4
    from livekit.agents.metrics import AgentMetrics, LLMMetrics
    from pydantic import TypeAdapter

    for rec in records[1:-1]:  # LiveKit's own LLMMetrics, whole
        assert isinstance(TypeAdapter(AgentMetrics).validate_python(rec), LLMMetrics)
    # LiveKit's TTFT and ours are the same figure, within a few ms
    livekit_ttft = sorted(r["ttft"] for r in records[1:-1])
    assert abs(livekit_ttft[len(livekit_ttft) // 2] - runs[0]["ttft"]["p50"]) < 0.005

    report = CliRunner().invoke(app, ["report", runs[0]["session_id"], "--db", str(db),
                                      "--format", "json"])
    figures = {f["figure"]: f for f in json.loads(report.stdout)["figures"]}
    assert figures["llm.ttft"]["count"] == 4
    host = runs[0]["provider"].rsplit(":", 1)[0]  # the model identity: the host, no port
    compare = CliRunner().invoke(app, ["compare", f"{host}/model-a", f"{host}/model-b",
                                       "--by", "model", "--db", str(db)])
    assert compare.exit_code == 0, compare.output
    budget = CliRunner().invoke(app, ["report", "--db", str(db), "--fail-over",
                                      "llm.ttft.p50=50ms"])
    assert budget.exit_code == 1


def test_fail_over_budgets(llm_server: LLMServer) -> None:
    llm_server.script.ttft = 0.1
    base = ["--llm-base-url", llm_server.url, "--llm", "x/m", "-n", "3", "--warmup", "0"]
    held = bench(*base, "--fail-over", "llm.ttft.p50=1s", "--fail-over", "llm.duration.max=2s")
    assert held.exit_code == 0, held.output
    assert "budget llm.ttft.p50 <= 1.00 s [x/m @ concurrency 1]: ok" in held.stderr
    broken = bench(*base, "--fail-over", "llm.ttft.p50=50ms")
    assert broken.exit_code == 1
    assert "BROKEN" in broken.stderr
    assert "Error: 1 budget broken: llm.ttft.p50" in broken.stderr
    other = bench(*base, "--fail-over", "e2e.p95=1s")
    assert other.exit_code == 2 and "only the LLM figures" in other.stderr


def test_table_output(llm_server: LLMServer) -> None:
    result = bench("--llm-base-url", llm_server.url, "--llm", "x/test-model", "-n", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for word in ("x/test-model", "concurrency 1", *(f.shown for f in REQUEST_FIGURES), "p99",
                 "3 requests, 0 errors", "tok/s", "req/s"):
        assert word in out, (word, out)


def test_livekit_inference_through_its_gateway(llm_server: LLMServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_INFERENCE_URL", llm_server.url)
    missing = bench("--llm", "openai/gpt-4.1-mini", "-n", "2")
    assert missing.exit_code == 2 and "LIVEKIT_API_KEY is not set" in missing.stderr
    monkeypatch.setenv("LIVEKIT_API_KEY", API_KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", API_SECRET)
    result = bench("--llm", "openai/gpt-4.1-mini", "-n", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert run["provider"] == "livekit" and run["errors"] == 0
    assert llm_server.script.requests[-1]["model"] == "openai/gpt-4.1-mini"


def test_json_through_the_global_format_in_a_subprocess(llm_server: LLMServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lkmetrics", "--format", "json", "bench", "llm",
         "--llm-base-url", llm_server.url, "--llm", "x/m", "-n", "2", "--no-record"],
        env=subprocess_env(), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert doc["runs"][0]["requests"] == 2
    assert "Traceback" not in proc.stderr
    bad = CliRunner().invoke(app, ["--format", "none", "bench", "llm", "--no-record"])
    assert bad.exit_code == 2 and "takes table, json" in bad.stderr


def test_help_states_the_definitions_and_loads_no_livekit() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from lkmetrics.cli import app\n"
        "r = CliRunner().invoke(app, ['bench', 'llm', '--help'], terminal_width=200)\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "print('LIVEKIT' if any(m.startswith('livekit') for m in sys.modules) else 'CLEAN')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert out.endswith("CLEAN")
    for word in ("vLLM", "AIPerf", *(f.shown for f in REQUEST_FIGURES), "--concurrency",
                 "--prompts", "--max-tokens", "--warmup", "--fail-over"):
        assert word in out, word
    import typer

    group = typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]
    command = group.commands["llm"]
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert (param.help or "").strip(), param.name


# -- bad input ------------------------------------------------------------------------------


def _one_error_line(result: Any, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], lines
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("args", "text"), [
    (["-n", "0"], "-n/--requests must be at least 1"),
    (["--concurrency", "0"], "--concurrency must be at least 1"),
    (["--concurrency", "1,x"], "--concurrency expects whole numbers"),
    (["--max-tokens", "0"], "--max-tokens must be at least 1"),
    (["--warmup", "-1"], "--warmup must be 0 or more"),
    (["-n", "99999999999999999999"], "-n/--requests must be at most 1,000,000"),
    (["--concurrency", "100000000"], "--concurrency must be at most 1,000"),
    (["--llm", "gpt4"], "--llm expects PROVIDER/MODEL"),
    (["--llm-base-url", "ftp://x"], "--llm-base-url must be an http"),
    (["--prompts", "missing.txt"], "--prompts missing.txt: no such file"),
    (["--prompt", "hi", "--prompts", "p.txt"], "give --prompt or --prompts, not both"),
])
def test_bad_input_is_a_usage_error(args: list[str], text: str, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("hello\n")
    _one_error_line(bench("--llm-base-url", "http://127.0.0.1:9/v1", "--llm", "x/m", *args)
                    if "--llm-base-url" not in args and "--llm" not in args
                    else bench(*args), 2, text)


def test_empty_and_bad_prompts_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    base = ["--llm-base-url", "http://127.0.0.1:9/v1", "--llm", "x/m"]
    _one_error_line(bench(*base, "--prompts", str(empty)), 2, "holds no prompts")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('Plain text is fine\n[{"role": "user", "content": "hi"}]\n{"oops": \n')
    _one_error_line(bench(*base, "--prompts", str(bad)), 2, f"{bad}:3: not valid JSON")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('[{"role": "robot", "content": "hi"}]\n')
    _one_error_line(bench(*base, "--prompts", str(wrong)), 2, f"{wrong}:1: expected a list")


def test_prompts_file_lines_are_sent_in_turn(llm_server: LLMServer, tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('first question\n\n[{"role": "system", "content": "Be brief."}, '
                       '{"role": "user", "content": "second"}]\n')
    result = bench("--llm-base-url", llm_server.url, "--llm", "x/m", "-n", "3", "--warmup",
                   "0", "--prompts", str(prompts))
    assert result.exit_code == 0, result.output
    sent = [r["messages"] for r in llm_server.script.requests]
    assert sent[0] == [{"role": "user", "content": "first question"}]
    assert sent[1] == [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "second"}]
    assert sent[2] == sent[0]


def test_unreachable_base_url_fails_every_request_and_says_so_once() -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = bench("--llm-base-url", f"http://127.0.0.1:{port}/v1", "--llm", "x/m", "-n", "5",
                   "--concurrency", "2", "--format", "json")
    assert result.exit_code == 1
    (run,) = json.loads(result.stdout)["runs"]
    assert run["errors"] == 5 and run["ttft"]["p50"] is None
    assert run["output_tokens_per_s"] == 0
    _one_error_line(result, 1, "5 of 5 requests failed (x/m @ concurrency 2)")


# -- the core, without a server ---------------------------------------------------------------


def test_concurrency_values() -> None:
    assert parse_concurrency(None) == [1]
    assert parse_concurrency(["1,4,16", "4", "32"]) == [1, 4, 16, 32]
    with pytest.raises(UsageError):
        parse_concurrency(["-2"])


def test_prompt_lines() -> None:
    prompts = parse_prompts_text('hi\n"quoted"\n{"messages": [{"role": "user", '
                                 '"content": "x"}]}\n', "f")
    assert prompts == [(("user", "hi"),), (("user", "quoted"),), (("user", "x"),)]
    with pytest.raises(UsageError, match="f:2:"):
        parse_prompts_text("ok\n[]\n", "f")


def test_tpot_and_rates() -> None:
    ok = RequestResult(ttft=0.2, latency=0.5, itl=[0.1, 0.1, 0.1], output_tokens=4)
    assert ok.tpot == pytest.approx(0.1)
    assert RequestResult(ttft=0.2, latency=0.2, output_tokens=1).tpot is None
    failed = RequestResult(error="boom")
    run = RunResult("m", "p", 2, [ok, ok, failed], wall_s=2.0)
    body = run.to_json()
    assert body["errors"] == 1 and body["first_error"] == "boom"
    assert body["output_tokens"] == 8 and body["output_tokens_per_s"] == 4.0
    assert body["requests_per_s"] == 1.0
    assert body["itl"]["p50"] == pytest.approx(0.1) and body["tpot"]["max"] == pytest.approx(0.1)


@pytest.mark.slow
def test_local_llm_is_started_and_benchmarked() -> None:
    result = bench("--llm", "local", "-n", "2", "--max-tokens", "8", "--format", "json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert run["model"] == "local" and run["provider"] == "local" and run["errors"] == 0
    assert run["ttft"]["p50"] > 0 and 0 < run["output_tokens"] <= 2 * 8


def test_progress_bar_on_a_terminal(llm_server: LLMServer) -> None:
    import pexpect

    child = pexpect.spawn(sys.executable, ["-m", "lkmetrics", "bench", "llm", "--llm-base-url",
                                           llm_server.url, "--llm", "x/m", "-n", "30",
                                           "--no-record"],
                          env=subprocess_env(), encoding="utf-8", timeout=90,
                          dimensions=(40, 120))
    child.expect(r"x/m @ 1")  # the bar, labelled with the run, while it runs
    child.expect(r"\d+/30")
    child.expect("30 requests, 0 errors")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_server_that_ignores_the_cap_is_named_and_both_cap_fields_are_sent(
        llm_server: LLMServer) -> None:
    """An OpenAI-compatible server gets the cap in both fields (llama-cpp-python reads only
    max_tokens); one that still returns more tokens than --max-tokens is said to ignore it."""
    llm_server.script.tokens = 6
    result, doc = bench_json(llm_server, "-n", "2", "--max-tokens", "3", "--warmup", "0")
    assert result.exit_code == 0, result.output
    assert all(r["max_completion_tokens"] == 3 and r["max_tokens"] == 3
               for r in llm_server.script.requests), llm_server.script.requests
    warnings = [line for line in result.stderr.splitlines() if "--max-tokens 3" in line]
    assert len(warnings) == 1 and "2 of 2 requests" in warnings[0], result.stderr
    assert "(up to 6)" in warnings[0] and "ignores the cap" in warnings[0]
    within, _ = bench_json(llm_server, "-n", "1", "--max-tokens", "6", "--warmup", "0")
    assert "--max-tokens" not in within.stderr


def test_the_table_and_the_budget_line_show_the_same_p95() -> None:
    """The client's TTFT (request ttft) and LiveKit's (llm.ttft, which budgets check) are two
    measurements: the table shows the budgeted one in its own row, with the very p95 the
    budget line gives (it once showed the client's 308 ms beside a budget line's 307 ms)."""
    import io
    import re

    from lkmetrics.analysis.budgets import parse_budget
    from lkmetrics.bench.llm import core
    from lkmetrics.bench.llm.render import write_table
    from lkmetrics.figures import FIGURES_BY_NAME
    from lkmetrics.render import tables
    from lkmetrics.units import fmt_value

    client = [0.100, 0.120, 0.140, 0.160, 0.300]
    livekit = [0.101, 0.121, 0.141, 0.161, 0.420]
    # p95 of five sorted values: rank 4 * 0.95 = 3.8, 80 % of the way from the 4th to the 5th
    client_p95 = fmt_value(0.160 + 0.8 * (0.300 - 0.160), "s")  # 272 ms
    livekit_p95 = fmt_value(0.161 + 0.8 * (0.420 - 0.161), "s")  # 368 ms
    run = core.RunResult("x/m", "127.0.0.1:1", 1, [
        core.RequestResult(ttft=t, latency=t + 0.2, itl=[0.01], output_tokens=2)
        for t in client], 1.0, metrics=[{"kind": "llm", "ttft": t} for t in livekit])
    checked = core.check([run], [parse_budget("llm.ttft.p95=1s")])
    table, line = io.StringIO(), io.StringIO()
    write_table([run], table, checked=checked)
    tables.budgets(checked, line)
    budget_p95 = re.search(r": ok: (.+)$", line.getvalue().strip())
    assert budget_p95 and budget_p95.group(1) == livekit_p95, line.getvalue()
    header = next(row for row in table.getvalue().splitlines() if "p95" in row).split()
    shown = FIGURES_BY_NAME["llm.ttft"].shown
    row = next(r for r in table.getvalue().splitlines() if r.strip().startswith(shown + " "))
    cells = re.findall(r"[\d.]+ m?s", row)
    assert cells[header.index("p95") - 1] == budget_p95.group(1), (row, line.getvalue())
    client_row = next(r for r in table.getvalue().splitlines()
                      if r.strip().startswith(REQUEST_FIGURES[0].shown + " "))
    assert re.findall(r"[\d.]+ m?s", client_row)[header.index("p95") - 1] == client_p95


def test_bench_llm_table_row_and_budget_line_agree_end_to_end(llm_server: LLMServer) -> None:
    """The same check through the command, over a real server and LiveKit's own LLM class."""
    import re

    from lkmetrics.figures import FIGURES_BY_NAME

    llm_server.script.ttft = 0.15
    result = bench("--llm-base-url", llm_server.url, "--llm", "x/test-model", "-n", "6",
                   "--fail-over", "llm.ttft.p95=10s")
    assert result.exit_code == 0, result.output
    line = re.search(r"budget llm\.ttft\.p95 <= 10\.00 s \[.*\]: ok: (.+)", result.stderr)
    assert line, result.stderr
    rows = result.stdout.splitlines()
    header = next(row for row in rows if "p95" in row).split()
    shown = FIGURES_BY_NAME["llm.ttft"].shown
    row = next(r for r in rows if r.strip().startswith(shown + " "))
    assert re.findall(r"[\d.]+ m?s", row)[header.index("p95") - 1] == line.group(1).strip()
