"""Hostile files (issue 22) given to every command that reads one: 100,000 nested brackets,
a symlink to /dev/zero, a FIFO nobody writes to. Each is one `Error:` line naming the file,
exit 2, no traceback, in well under the time a hang would take."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers.store import run, session_records, write_jsonl

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["deep", "zero", "fifo"])
def hostile_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / f"{request.param}.json"
    if request.param == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
        return path, "nested more than"
    if request.param == "zero":
        path.symlink_to("/dev/zero")
        return path, "is a device, not a regular file"
    os.mkfifo(path)
    return path, "is a FIFO, not a regular file"


@pytest.mark.parametrize("how", ["prices --prices", "report LKMETRICS_PRICES",
                                 "bench --prompts", "import"])
def test_a_hostile_file_is_one_usage_error(hostile_file: tuple[Path, str], how: str,
                                           tmp_path: Path, home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path, words = hostile_file
    if how == "prices --prices":
        argv = ["prices", "--prices", str(path)]
    elif how == "report LKMETRICS_PRICES":
        write_jsonl(tmp_path / "r.jsonl", session_records("s_a", turns=1))
        assert run("import", str(tmp_path / "r.jsonl")).exit_code == 0
        monkeypatch.setenv("LKMETRICS_PRICES", str(path))
        argv = ["report", "s_a"]
    elif how == "bench --prompts":
        argv = ["bench", "llm", "--llm-base-url", "http://127.0.0.1:9/v1", "--llm", "x/m",
                "--prompts", str(path), "--no-record"]
    else:
        argv = ["import", str(path)]
    started = time.monotonic()
    result = run(*argv)
    assert time.monotonic() - started < 20
    if how == "import":  # its own check of the path: not a file, or a line not JSON
        assert "Traceback" not in result.output and result.exit_code in (1, 2), result.output
        assert "Error: " in result.stderr and path.name in result.stderr
        return
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1, \
        result.stderr
    assert words in result.stderr and str(path.name) in result.stderr
