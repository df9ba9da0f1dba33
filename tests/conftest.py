"""Every shared fixture and helper: an isolated home, environment and terminal width; the local
LLM server; a list writer; waiting for a process to be gone."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

from llm_server import LLMServer, Script  # noqa: E402

SCRUB = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_INFERENCE_URL",
         "OPENAI_API_KEY", "LKMETRICS_FORMAT", "LKMETRICS_SETTINGS", "LKMETRICS_RELAY",
         "LKMETRICS_OWNER_PID")

# credentials for LiveKit Inference pointed at the local server: fake, but well-formed
API_KEY = "devkey-test"
API_SECRET = "devsecret-0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp LKMETRICS_HOME and cwd (so no stray .env), no LiveKit credentials, a fixed width."""
    for var in SCRUB:  # set then delete, so monkeypatch restores whatever .env loading adds
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LKMETRICS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    if os.environ.get("TERM", "dumb") == "dumb":  # a pty child (pexpect) needs a real terminal
        monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def home(isolated: Path) -> Path:
    """The test's LKMETRICS_HOME (where the default database lives)."""
    return isolated


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200-column terminal, for tests that read whole table rows."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    srv = LLMServer(Script())
    yield srv
    srv.close()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The current (isolated) environment for a child lkmetrics process."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(extra)
    return env


class ListWriter:
    """A pipeline writer that keeps every record it is given."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


def running(pid: int | str) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int | str, timeout: float = 5.0) -> bool:
    """Wait until the process has exited; False if it still runs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without finalizing the interpreter once pytest has reported, when LiveKit's Rust
    FFI is loaded: its tokio runtime can panic while the interpreter tears down after the last
    test ("panic in a function that cannot unwind", SIGABRT), seen once in a fresh-machine run
    whose 319 tests had all passed."""
    if _EXIT_STATUS and "livekit.rtc" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
