"""`bench llm`: worker processes (--workers), one bench id per invocation, and the fleet
options, against the real scripted server, a real SQLite store and a real /metrics scrape."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lkmetrics.bench.llm.core import auto_workers, make_config, parse_workers
from lkmetrics.cli import app
from lkmetrics.config.options import FleetOptions
from lkmetrics.errors import UsageError
from tests.bench.test_llm import bench, bench_json, server_process
from tests.helpers.common import TESTS
from tests.helpers.llm_server import LLMServer

assert TESTS.is_dir()


def sessions(db: Path) -> list[dict[str, Any]]:
    listed = CliRunner().invoke(app, ["sessions", "--db", str(db), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_every_run_of_one_invocation_carries_its_bench_id(llm_server: LLMServer,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    result, doc = bench_json(llm_server, "-n", "3", "--concurrency", "1,2", db=db)
    assert result.exit_code == 0, result.output
    bench_id = doc["bench_id"]
    assert bench_id.startswith("b_")
    rows = sessions(db)
    assert len(rows) == 2 and {r["bench_id"] for r in rows} == {bench_id}
    assert {r["command"] for r in rows} == {"bench llm"}
    # a second invocation is another bench; `report --bench last` is the newest one
    result2, doc2 = bench_json(llm_server, "-n", "2", db=db)
    assert result2.exit_code == 0 and doc2["bench_id"] != bench_id
    report = CliRunner().invoke(app, ["report", "--bench", bench_id, "--db", str(db),
                                      "--format", "json"])
    assert report.exit_code == 0, report.output
    figures = json.loads(report.stdout)
    assert figures["scope"] == f"bench {bench_id} (2 sessions)"
    ttft = next(f for f in figures["figures"] if f["figure"] == "llm.ttft")
    assert ttft["count"] == 6
    last = CliRunner().invoke(app, ["report", "--bench", "last", "--db", str(db),
                                    "--format", "json"])
    assert json.loads(last.stdout)["scope"] == f"bench {doc2['bench_id']} (1 session)"
    table = bench("--llm-base-url", llm_server.url, "--llm", "x/test-model", "-n", "1", db=db)
    assert "runs recorded under bench id b_" in table.stdout
    assert "lkmetrics report --bench b_" in table.stdout


def test_workers_spread_the_requests_and_record_as_one_process_does(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with server_process("--ttft", "0.1", "--gap", "0.01", "--tokens", "6") as url:
        result = bench("--llm-base-url", url, "--llm", "x/test-model", "-n", "12",
                       "--concurrency", "1,4", "--workers", "2", "--format", "json", db=db)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    one, four = doc["runs"]
    for run in (one, four):
        assert run["requests"] == 12 and run["errors"] == 0
        assert 0.095 < run["ttft"]["p50"] < 0.2
        assert 0.009 < run["itl"]["p50"] < 0.03
        assert run["output_tokens"] == 12 * 6
    # four in flight over two processes overlapped: far less than 12 requests back to back
    assert four["wall_s"] < one["wall_s"] / 2
    rows = sessions(db)
    assert {r["bench_id"] for r in rows} == {doc["bench_id"]}
    exported = CliRunner().invoke(app, ["export", four["session_id"], "--db", str(db)])
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["kind"] for r in records] == ["session"] + ["llm"] * 12 + ["summary"]
    assert records[0]["workers"] == 2 and records[0]["concurrency"] == 4
    assert records[0]["bench_id"] == doc["bench_id"]
    # LiveKit's own TTFT, from the worker processes, is the figure reported
    lk = sorted(r["ttft"] for r in records[1:-1])
    assert abs(lk[len(lk) // 2] - four["ttft"]["p50"]) < 0.005
    assert [r["timestamp"] for r in records[1:-1]] == sorted(r["timestamp"]
                                                             for r in records[1:-1])


def test_workers_count_failed_requests(tmp_path: Path) -> None:
    with server_process("--ttft", "0.02", "--tokens", "3", "--fail-every", "4") as url:
        result = bench("--llm-base-url", url, "--llm", "x/test-model", "-n", "8",
                       "--concurrency", "4", "--workers", "2", "--warmup", "0",
                       "--format", "json")
    assert result.exit_code == 1, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert run["requests"] == 8 and run["errors"] == 2
    assert "scripted failure" in run["first_error"]


@pytest.mark.parametrize("workers", [False, True])
def test_prometheus_serves_the_llm_figures_of_every_run(tmp_path: Path, workers: bool) -> None:
    from lkmetrics.bench.llm import runner
    from lkmetrics.bench.shared import fleet_writers

    with server_process("--ttft", "0.05", "--tokens", "4") as url:
        config = make_config(models=["x/test-model"], base_url=url, requests=3,
                             concurrency=["1", "2"], prompt=None, prompts_file=None,
                             max_tokens=4, warmup=1, fail_over=["llm.ttft.p95=250ms"],
                             default_model="x/test-model", workers="2" if workers else "1")
        with fleet_writers(FleetOptions(prometheus_port=0), config.budgets) as shared:
            (prom,) = [w.writer for w in shared]
            runs, errors = runner.run(config, "b_test", db=None, record=False, fleet=shared)
            assert not errors and [r.errors for r in runs] == [0, 0]
            with urllib.request.urlopen(f"http://127.0.0.1:{prom.port}/metrics",
                                        timeout=5) as r:
                body = r.read().decode()
    lines = [line for line in body.splitlines()
             if line.startswith("lkmetrics_llm_ttft_seconds_count")]
    assert lines and all('model="test-model"' in line for line in lines), body
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == 6.0
    assert 'le="0.25"' in body  # the --fail-over limit is a bucket


def test_bench_llm_refuses_a_privileged_prometheus_port(llm_server: LLMServer) -> None:
    result = bench("--llm-base-url", llm_server.url, "--llm", "x/test-model",
                   "--prometheus-port", "80")
    assert result.exit_code == 2, result.output
    assert "privileged" in result.output and "Traceback" not in result.output
    assert not llm_server.script.requests  # refused before any request


@pytest.mark.parametrize("value", ["0", "-1", "65", "99999999999999999999", "abc", "", "1.5"])
def test_bad_workers_is_a_one_line_usage_error(value: str) -> None:
    result = bench("--llm-base-url", "http://127.0.0.1:9/v1", "--llm", "x/m",
                   "--workers", value)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--workers" in lines[0]
    assert "Traceback" not in result.output


def test_workers_values() -> None:
    assert parse_workers(None) is None and parse_workers(" Auto ") is None
    assert parse_workers("3") == 3
    with pytest.raises(UsageError):
        parse_workers("0")
    assert [auto_workers(c, 2) for c in (1, 8, 9, 16, 32)] == [1, 1, 2, 2, 2]
    assert auto_workers(32, None) == 1 and auto_workers(64, 16) == 8
    config = make_config(models=None, base_url=None, requests=2, concurrency=["1", "32"],
                         prompt=None, prompts_file=None, max_tokens=4, warmup=0,
                         fail_over=None, default_model="x/m", workers="8")
    assert [config.workers_for(c) for c in (1, 32)] == [1, 2]  # never above the requests


def _children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _recorded(db: Path) -> bool:
    """Whether a session is in the store yet (read without lkmetrics: no migration)."""
    import sqlite3

    if not db.exists():
        return False
    conn = sqlite3.connect(db)
    try:
        return bool(conn.execute("SELECT count(*) FROM sessions").fetchone()[0] > 0)
    except sqlite3.Error:
        return False
    finally:
        conn.close()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(("sig", "code", "status"), [("SIGINT", 130, "interrupted"),
                                                     ("SIGTERM", 143, "terminated")])
def test_a_signal_mid_run_keeps_the_session(tmp_path: Path, workers: str, sig: str, code: int,
                                            status: str) -> None:
    """Ctrl-C or SIGTERM while requests are in flight (in one process or over workers): exit
    130 or 143, one Error: line, no traceback, and the run's session is kept with the status
    ``interrupted`` or ``terminated``."""
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.common import subprocess_env

    db = tmp_path / "m.db"
    with server_process("--ttft", "3.0", "--tokens", "2") as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lkmetrics", "bench", "llm", "--llm-base-url", url, "--llm",
             "x/test-model", "-n", "4", "--concurrency", "2", "--workers", workers,
             "--warmup", "0", "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
        deadline = time.monotonic() + 60
        while not _recorded(db) and time.monotonic() < deadline:  # the run's session is open
            time.sleep(0.1)
        time.sleep(1.0)  # its first requests wait for their first token
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.strip()] == [
        line for line in err.splitlines() if line.startswith("Error: bench llm ")], err
    rows = sessions(db)
    assert len(rows) == 1 and rows[0]["exit_status"] == status, rows


# seconds after both workers exist: while they start (import LiveKit), while they warm up,
# as the run starts, mid-request (each request waits 2 s for its first token), between the
# two rounds of requests and as results come back
KILL_MOMENTS = [0.0, 0.4, 1.2, 2.0, 3.0, 4.2, 5.5]


@pytest.mark.parametrize("moment", KILL_MOMENTS)
def test_a_worker_killed_at_any_moment_ends_the_bench_with_one_error(
        tmp_path: Path, moment: float) -> None:
    """A worker process that dies (kill -9) at any moment of a run: the bench stops within
    30 s with one Error: line and exit 1, no traceback, no hang, its session is recorded as
    ended with an error and no worker is left running. Whatever happens, the test kills
    what it started."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.common import subprocess_env

    db = tmp_path / "m.db"
    with server_process("--ttft", "2.0", "--tokens", "2") as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lkmetrics", "bench", "llm", "--llm-base-url", url, "--llm",
             "x/test-model", "-n", "8", "--concurrency", "4", "--workers", "2", "--warmup",
             "1", "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
            start_new_session=True)
        workers: list[int] = []
        try:
            deadline = time.monotonic() + 60
            while len(workers) < 2 and time.monotonic() < deadline:
                workers = [p for p in _children(proc.pid)
                           if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
                time.sleep(0.05)
            assert len(workers) == 2, "the bench did not start two workers"
            time.sleep(moment)
            os.kill(workers[0], signal.SIGKILL)
            killed = time.monotonic()
            out, err = proc.communicate(timeout=30)
            assert time.monotonic() - killed < 30
        finally:
            if proc.poll() is None:  # a hang: leave nothing behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "worker" in errors[0], err
    rows = sessions(db)
    assert len(rows) == 1 and rows[0]["exit_status"] == "error", rows
    assert not [p for p in workers[1:] if Path(f"/proc/{p}").exists()
                and "Z" not in (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0])]


def test_an_idle_worker_killed_while_it_waits_ends_the_bench_at_once(tmp_path: Path) -> None:
    """At concurrency 1 of `--concurrency 1,2 --workers 2` one worker has nothing to do and
    waits for the next run (it used to sleep in a shared barrier, whose abort then waited for
    ever on the dead sleeper). Killing it ends the bench within seconds, not after the run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.common import subprocess_env

    db = tmp_path / "m.db"
    with server_process("--ttft", "1.0", "--tokens", "2") as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lkmetrics", "bench", "llm", "--llm-base-url", url, "--llm",
             "x/test-model", "-n", "20", "--concurrency", "1,2", "--workers", "2",
             "--warmup", "0", "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
            start_new_session=True)
        workers: list[int] = []
        try:
            deadline = time.monotonic() + 60
            while len(workers) < 2 and time.monotonic() < deadline:
                workers = sorted(p for p in _children(proc.pid)
                                 if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes())
                time.sleep(0.05)
            assert len(workers) == 2, "the bench did not start two workers"
            time.sleep(4.0)  # both have started; the first run (20 s at c=1) is under way
            os.kill(workers[1], signal.SIGKILL)  # the second one started is the idle one
            killed = time.monotonic()
            out, err = proc.communicate(timeout=30)
            ended_after = time.monotonic() - killed
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 1, (out, err)
    assert ended_after < 5, ended_after  # not after the rest of the 20 s run
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "worker" in errors[0], err
    rows = sessions(db)
    assert len(rows) == 1 and rows[0]["exit_status"] == "error", rows


def test_otlp_receives_the_llm_figures_of_every_run_from_the_command_line(
        tmp_path: Path) -> None:
    """`bench llm --otlp URL`, end to end in its own process and over two workers: a local
    OTLP/HTTP receiver gets LiveKit's TTFT of every counted request, under the model."""
    import subprocess
    import sys

    from tests.helpers.common import subprocess_env
    from tests.helpers.fleet import OtlpReceiver

    receiver = OtlpReceiver()
    try:
        with server_process("--ttft", "0.05", "--tokens", "4") as url:
            proc = subprocess.run(
                [sys.executable, "-m", "lkmetrics", "bench", "llm", "--llm-base-url", url,
                 "--llm", "x/test-model", "-n", "3", "--concurrency", "1,2", "--workers", "2",
                 "--otlp", receiver.url, "--format", "json", "--db", str(tmp_path / "m.db")],
                capture_output=True, text=True, env=subprocess_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr
        metrics = receiver.latest_metrics()
    finally:
        receiver.close()
    ttft = metrics["gen_ai.client.operation.time_to_first_chunk"]
    points = list(ttft.histogram.data_points)
    models = {kv.value.string_value for p in points for kv in p.attributes
              if kv.key == "gen_ai.request.model"}
    assert models == {"test-model"}
    assert sum(p.count for p in points) == 6  # 3 requests in each of the 2 runs
    # the same LiveKit LLMMetrics the store recorded for those requests
    import sqlite3

    conn = sqlite3.connect(tmp_path / "m.db")
    recorded = conn.execute("SELECT count(*), sum(llm_ttft) FROM records "
                            "WHERE kind = 'llm'").fetchone()
    conn.close()
    assert recorded[0] == 6
    assert sum(p.sum for p in points) == pytest.approx(recorded[1], rel=1e-9)
