"""How lkmetrics ends once LiveKit's native runtime has started: the work of a normal exit
(threads joined, exit handlers, output flushed) and then os._exit, so no native thread can
call into a finalizing interpreter (the SIGABRT of issue 23's CI run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.common import ROOT, subprocess_env

pytestmark = pytest.mark.timeout(60)

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from pathlib import Path

    out = Path(sys.argv[1])
    if sys.argv[2] == "ffi":
        from livekit.rtc._ffi_client import FfiClient
        FfiClient.instance  # starts the native runtime, as any rtc object does
    atexit.register(lambda: (out / "atexit").write_text("ran"))

    def late():
        time.sleep(0.3)
        (out / "thread").write_text("joined")

    threading.Thread(target=late).start()

    class Finalized:
        def __del__(self):
            sys.stderr.write("interpreter finalized\\n")

    kept = Finalized()
    sys.stdout.write("unflushed output")
    from lkmetrics.cli.app import exit_past_native_runtime
    exit_past_native_runtime(SystemExit(eval(sys.argv[3])))
    sys.stderr.write("returned\\n")
    raise SystemExit(eval(sys.argv[3]))
""")


def end(tmp_path: Path, runtime: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), runtime, code],
                          env=subprocess_env(PYTHONPATH=str(ROOT)), capture_output=True,
                          text=True, timeout=50)


@pytest.mark.parametrize("code,status", [("3", 3), ("None", 0), ("'Error: bad'", 1)])
def test_with_the_native_runtime_the_exit_skips_finalization(
        tmp_path: Path, code: str, status: int) -> None:
    proc = end(tmp_path, "ffi", code)

    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "unflushed output"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"
    assert "returned" not in proc.stderr
    assert "interpreter finalized" not in proc.stderr, "os._exit skips the finalization"
    if status == 1:
        assert proc.stderr.splitlines() == ["Error: bad"]


def test_without_it_python_exits_as_usual(tmp_path: Path) -> None:
    proc = end(tmp_path, "none", "3")

    assert proc.returncode == 3
    assert proc.stdout == "unflushed output"
    assert proc.stderr.splitlines() == ["returned", "interpreter finalized"]
    assert (tmp_path / "atexit").read_text() == "ran"


MAIN = textwrap.dedent("""
    import os, signal, sys, threading, time
    from livekit.rtc._ffi_client import FfiClient
    FfiClient.instance

    class Finalized:
        def __del__(self):
            sys.stderr.write("interpreter finalized\\n")

    kept = Finalized()
    import importlib
    cli = importlib.import_module("lkmetrics.cli.app")
    case = sys.argv[1]
    if case == "bug":
        def app(**kwargs):
            raise ZeroDivisionError("a bug in a command")
        cli.app = app
    elif case == "ctrl-c":  # Ctrl-C while the exit waits for a thread
        def late():
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
        threading.Thread(target=late).start()
    sys.argv = ["lkmetrics", "--version"]
    cli.main()
""")


@pytest.mark.parametrize("case,status,stderr", [
    ("version", 0, ""),
    ("bug", 1, "ZeroDivisionError: a bug in a command"),
    ("ctrl-c", 130, "Error: interrupted (SIGINT)."),
])
def test_main_takes_that_way_out(case: str, status: int, stderr: str) -> None:
    proc = subprocess.run([sys.executable, "-c", MAIN, case],
                          env=subprocess_env(PYTHONPATH=str(ROOT)), capture_output=True,
                          text=True, timeout=50)

    assert proc.returncode == status, proc.stderr
    assert stderr in proc.stderr and "interpreter finalized" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("lkmetrics ") or case == "bug"
