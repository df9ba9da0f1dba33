"""Isolates HOME, the environment and the terminal width; starts local test servers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

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
    monkeypatch.chdir(tmp_path)
    return home


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
