"""One rule for every command (issue 22): SIGTERM and Ctrl-C end it with one `Error:` line
naming the signal (exit 143, 130); a closed stdout (`| head -1`) ends it quietly, exit 0."""

from __future__ import annotations

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
