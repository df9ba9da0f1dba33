"""Every shared fixture: an isolated home, environment and terminal width; the local LLM
server. The helpers the tests share are the package tests.helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.common import SCRUB
from tests.helpers.llm_server import LLMServer, Script


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
