"""One live display at a time on stderr (issue 20, item 8): a status shown while a progress
bar runs is a line above the bar, not a spinner drawn over the bar's line; the bar counts
on. Real Rich in a real pty."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.helpers.common import API_KEY, API_SECRET, ROOT, TESTS, subprocess_env

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # the frames of Rich's default spinner (dots)

SNIPPET = """
import time
from lkmetrics.activity import status
from lkmetrics.bench.shared import progress

with progress(3, "bench voice") as advance:
    assert advance is not None
    for i in range(3):
        with status(f"Starting server {i}..."):
            time.sleep(0.5)
        advance(f"run @ {i}")
        time.sleep(0.3)
print("done")
"""


def in_a_pty(argv: list[str], env: dict[str, str], timeout: float) -> tuple[str, int | None]:
    child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8",
                          codec_errors="replace", timeout=timeout, dimensions=(40, 120))
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out.append(child.read_nonblocking(65536, timeout=timeout))
        except pexpect.EOF:
            break
    child.close()
    return "".join(out), child.exitstatus


def test_a_status_under_a_progress_bar_is_a_line_above_it() -> None:
    text, code = in_a_pty([sys.executable, "-c", SNIPPET],
                          subprocess_env(PYTHONPATH=str(ROOT)), 60)
    assert code == 0 and "done" in text, text[-2000:]
    assert not any(frame in text for frame in SPINNER), text[-2000:]
    for i in range(3):
        assert text.count(f"Starting server {i}...") == 1, text[-2000:]
    assert "1/3" in text and "2/3" in text and "3/3" in text


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_voice_with_the_local_llm_shows_one_bar_that_counts(tmp_path: Path) -> None:
    from tests.helpers.fakes import tone_wav
    from tests.helpers.llm_server import LLMServer

    wav = str(tone_wav(tmp_path / "tone.wav"))
    server = LLMServer()  # the agent's own LLM, replaced by --llm local
    try:
        env = subprocess_env(PYTHONPATH=str(ROOT), LIVEKIT_INFERENCE_URL=server.url,
                             LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET,
                             FIXTURE_TOOL_SECONDS="0.1")
        text, code = in_a_pty(
            [sys.executable, "-m", "lkmetrics", "bench", "voice", "--no-record", "--agent",
             str(TESTS / "agent" / "fixtures" / "shop" / "agent.py"), "--llm", "local",
             "--say", wav, "--say", wav, "--say", wav, "--concurrency", "1"], env, 280)
    finally:
        server.close()
    assert code == 0, text[-3000:]
    assert not any(frame in text for frame in SPINNER), text[-3000:]
    assert text.count("Starting the local LLM server") == 1
    assert "1/3" in text and "2/3" in text and "3/3" in text
