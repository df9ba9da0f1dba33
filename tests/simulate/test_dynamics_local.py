"""Conversation dynamics with the real local models (Whisper tiny.en, SmolLM2, Piper): a
barge-in 1.0 s into each reply, and the word error rate of the built-in lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.common import subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_barge_in_and_wer_with_the_local_pipeline(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lkmetrics", "simulate", "--local", "--format", "json",
         "--no-greet", "--no-record", "--pause", "0.3", "--barge-in", "1.0"],
        capture_output=True, text=True, timeout=540,
        env=subprocess_env(LKMETRICS_HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    turns = [r for r in records if r["kind"] == "turn"]
    assert len(turns) == 3
    barged = [t for t in turns[:2] if "yielded" in t]  # the last line has nothing to say over
    # a reply shorter than 1 s is heard in full and says so, never with a made-up time
    for t in turns[:2]:
        assert t in barged or t["barge_in"].startswith("no barge-in (reply ended at")
    assert barged, [t.get("barge_in") for t in turns]
    for t in barged:
        assert t["yielded"] is True and t["interrupted"] is True
        assert 0.05 <= t["time_to_yield"] <= 2.0
    wers = [t["stt_wer"] for t in turns]
    assert len(wers) == 3 and sum(wers) / 3 < 0.3
    assert records[-1]["figures"]["stt.wer"]["count"] == 3
