"""One rule for every command (issue 22): SIGTERM and Ctrl-C end it with one `Error:` line
naming the signal (exit 143, 130); a closed stdout (`| head -1`) ends it quietly, exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.common import ROOT, subprocess_env
from tests.helpers.store import run, session_records, write_jsonl

pytestmark = pytest.mark.timeout(120)


def lkmetrics(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lkmetrics", *args],
                            env=subprocess_env(PYTHONPATH=str(ROOT)), stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("sig,code,name", [(signal.SIGTERM, 143, "SIGTERM"),
                                           (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_is_one_line_naming_it(home: Path, sig: int, code: int, name: str) -> None:
    # a command blocked on its input (an import from a pipe nobody writes to) when it lands
    proc = lkmetrics("import", "-", stdin=subprocess.PIPE)
    time.sleep(2.0)  # the interpreter is up and blocked on stdin
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    lines = err.decode().splitlines()
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith("Error: ") and name in lines[0], lines


@pytest.mark.parametrize("argv", [("sessions", "-n", "0"), ("sessions", "-n", "0", "-f", "csv"),
                                  ("export",), ("report", "--by", "session", "--since",
                                                "3000d")])
def test_a_closed_pipe_ends_quietly_with_exit_0(home: Path, argv: tuple[str, ...]) -> None:
    records = [r for i in range(600) for r in session_records(
        f"s_{i:04d}", turns=1, seed=i, start=1_764_240_000.0 + 100 * i)]
    assert run("import", str(write_jsonl(home / "many.jsonl", records))).exit_code == 0
    proc = lkmetrics(*argv)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    _, err = proc.communicate(timeout=60)
    assert first and proc.returncode == 0, err
    assert err == b"", err


# -- a signal that lands while a command works, not while it waits on its input ------------

PIPE_BYTES = 4096  # the stdout pipe's buffer: a command writing more blocks in the write


def wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def blocked_in_its_output(argv: tuple[str, ...]) -> tuple[subprocess.Popen[bytes], int]:
    """The CLI running ``argv`` with a small stdout pipe nobody reads: once its output has
    begun and the pipe is full, it is blocked writing it, inside the command."""
    import fcntl

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    proc = subprocess.Popen([sys.executable, "-m", "lkmetrics", *argv],
                            env=subprocess_env(PYTHONPATH=str(ROOT), COLUMNS="120"),
                            stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    first = os.read(read_end, 1)  # its output has begun: the command's body runs
    assert first, proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while "pipe" not in wchan(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "it ended before the signal: its output fits in the pipe"
    return proc, read_end


def drain(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    os.close(fd)
    return out


@pytest.fixture
def many_sessions(home: Path) -> Path:
    records = [r for i in range(300) for r in session_records(
        f"s_{i:04d}", turns=1, seed=i, start=1_764_240_000.0 + 100 * i)]
    assert run("import", str(write_jsonl(home / "many.jsonl", records))).exit_code == 0
    return home


@pytest.mark.parametrize("sig,code,name", [(signal.SIGTERM, 143, "SIGTERM"),
                                           (signal.SIGINT, 130, "SIGINT")])
@pytest.mark.parametrize("argv", [("report", "--by", "session", "--since", "3000d"),
                                  ("plot", "--by", "session", "--since", "3000d"),
                                  ("prices", "--prices", "PRICES")], ids=lambda a: a[0])
def test_a_signal_while_a_command_works_is_one_line_naming_it(
        many_sessions: Path, tmp_path: Path, argv: tuple[str, ...], sig: int, code: int,
        name: str) -> None:
    if argv[0] == "prices":  # many prices: more output than the pipe holds
        prices = {"prices": [{"type": "tts", "model": f"acme/voice-{i}",
                              "per_million_characters": 10.0 + i} for i in range(400)]}
        (tmp_path / "prices.json").write_text(json.dumps(prices))
        argv = ("prices", "--prices", str(tmp_path / "prices.json"))
    proc, stdout = blocked_in_its_output(argv)
    proc.send_signal(sig)
    out = drain(stdout)
    _, err = proc.communicate(timeout=30)
    lines = err.decode().splitlines()
    assert proc.returncode == code, (proc.returncode, err)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and name in lines[0], lines
    assert f"lkmetrics {argv[0]}" in lines[0] and b"Traceback" not in out + err


@pytest.mark.parametrize("fmt", ["json", "table"])
@pytest.mark.parametrize("sig,code,name", [(signal.SIGTERM, 143, "SIGTERM"),
                                           (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_during_bench_llm_keeps_the_runs_done(
        home: Path, sig: int, code: int, name: str, fmt: str) -> None:
    from tests.helpers.llm_server import LLMServer, Script

    server = LLMServer(Script(ttft=0.05, tokens=4))
    try:
        db = home / "bench.db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "lkmetrics", "bench", "llm", "--llm-base-url", server.url,
             "--llm", "x/test-model", "-n", "3", "-c", "1,2", "--warmup", "0", "--workers",
             "1", "--format", fmt, "--db", str(db)],
            env=subprocess_env(PYTHONPATH=str(ROOT), COLUMNS="200"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        # run 1 (concurrency 1) is requests 1-3; once run 2 has begun, its requests hang
        while len(server.script.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.script.ttft = 60.0
        while len(server.script.requests) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)
        assert proc.poll() is None
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        server.close()
    lines = err.decode().splitlines()
    assert proc.returncode == code, err
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1 and name in errors[0] and "bench llm" in errors[0], lines
    assert b"Traceback" not in err
    # the run that finished is written, as it would have been; the unfinished one is not
    if fmt == "json":
        doc = json.loads(out)
        assert [(r["concurrency"], r["requests"], r["errors"]) for r in doc["runs"]] == [
            (1, 3, 0)], doc
        assert doc["stopped_by"] == name
    else:
        assert b"concurrency 1 " in out and b"concurrency 2" not in out, out
    sessions = subprocess.run([sys.executable, "-m", "lkmetrics", "sessions", "--db", str(db),
                               "--format", "json"], capture_output=True, text=True,
                              env=subprocess_env(PYTHONPATH=str(ROOT)), timeout=60)
    statuses = sorted(json.loads(line)["exit_status"] for line in sessions.stdout.splitlines())
    assert statuses == sorted(["ok", "terminated" if sig == signal.SIGTERM else "interrupted"])
