"""Shared test helpers: the environment a child process gets, a list writer, process waits."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent

SCRUB = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_INFERENCE_URL",
         "OPENAI_API_KEY", "LKMETRICS_FORMAT", "LKMETRICS_SETTINGS", "LKMETRICS_RELAY",
         "LKMETRICS_OWNER_PID", "LKMETRICS_WHISPER_WINDOW", "LKMETRICS_WHISPER_FINAL")

# credentials for LiveKit Inference pointed at the local server: fake, but well-formed
API_KEY = "devkey-test"
API_SECRET = "devsecret-0123456789abcdef0123456789abcdef"


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
