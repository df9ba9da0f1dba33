"""The store commands end to end: real SQLite files in a temporary LKMETRICS_HOME."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pexpect
import pytest
from click.testing import Result

from lkmetrics.figures import COST_FIGURES, shown_only_if_measured
from lkmetrics.figures import FIGURES as ALL_FIGURES
from lkmetrics.store import Store, importer, parsing
from lkmetrics.store.rows import Batch
from tests.helpers.common import ROOT
from tests.helpers.store import run, session_records, write_jsonl

pytestmark = pytest.mark.usefixtures("wide")  # whole table rows

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ENTRY = (
    "import sys; sys.path.insert(0, {root!r}); from tests.helpers.store import cli_app; "
    "cli_app()(sys.argv[1:], prog_name='lkmetrics')"
)

# the figures these sessions have (no --agent tool calls)
FIGURES = tuple(f for f in ALL_FIGURES if not shown_only_if_measured(f))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def recorded(tmp_path: Path, home: Path) -> list[dict[str, Any]]:
    """Two sessions imported into the default store; returns their records."""
    recs = list(session_records("s_one", turns=12, seed=1, start=1_764_000_000.0))
    recs += list(session_records("s_two", turns=9, seed=2, start=1_764_100_000.0, scale=1.5,
                                 llm="openai/gpt-4o"))
    src = write_jsonl(tmp_path / "run.jsonl", recs)
    result = run("import", str(src))
    assert result.exit_code == 0, result.output
    return recs


def dig(record: dict[str, Any], path: str) -> Any:
    """``record["stages"]["first_sentence"]`` for the path ``stages.first_sentence``."""
    value: Any = record
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def one_error_line(result: Result) -> str:
    """The command failed with one `Error: ...` line on stderr, no traceback, nothing on stdout."""
    assert result.exit_code != 0
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return err


def test_sessions_newest_first(recorded: list[dict[str, Any]]) -> None:
    result = run("sessions", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["s_two", "s_one"]
    two = rows[0]
    assert (two["llm"], two["stt"], two["tts"], two["turns"]) == (
        "openai/gpt-4o", "deepgram/nova-3", "cartesia/sonic-3", 9)
    e2e = [r["e2e_latency"] for r in recorded if r["session_id"] == "s_two" and r["kind"] == "turn"]
    assert two["p50_e2e"] == pytest.approx(float(np.percentile(e2e, 50)))
    assert two["duration"] == pytest.approx(recorded[-1]["time"] - 1_764_100_000.0)
    table = run("sessions")
    assert table.exit_code == 0
    assert table.stdout.index("s_two") < table.stdout.index("s_one")
    assert "openai/gpt-4o" in table.stdout


def test_report_json_matches_numpy(recorded: list[dict[str, Any]]) -> None:
    result = run("report", "--format", "json")
    assert result.exit_code == 0, result.output
    (doc,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert "interpolate linearly" in doc["percentile"]
    by_name = {f["figure"]: f for f in doc["figures"]}
    assert list(by_name) == [f.name for f in (*FIGURES, *COST_FIGURES)]
    for figure in FIGURES:
        values = [float(v) for r in recorded
                  if r["kind"] == figure.kind and (v := dig(r, figure.field)) is not None]
        stats = by_name[figure.name]
        assert stats["count"] == len(values)
        for p in (50, 90, 95, 99):
            assert stats[f"p{p}"] == pytest.approx(float(np.percentile(values, p)))
        assert stats["mean"] == pytest.approx(float(np.mean(values)))
        assert stats["max"] == pytest.approx(max(values))
    assert {t["model"] for t in doc["tokens"]} == {"openai/gpt-4.1-mini", "openai/gpt-4o"}
    assert {u["type"] for u in doc["usage"]} == {"llm_usage", "tts_usage"}


def test_a_format_given_before_a_store_command_applies_to_it(
    recorded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = run("--format", "json", "report", "last")
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout) == json.loads(run("report", "last", "-f", "json").stdout)
    sessions = run("--format", "json", "sessions")
    assert sessions.exit_code == 0
    assert [json.loads(line)["id"] for line in sessions.stdout.splitlines()] == ["s_two", "s_one"]
    # the command's own --format wins
    assert "session s_two" in run("--format", "json", "report", "last", "-f", "table").stdout
    # one the command does not take is a usage error naming the ones it does
    wrong = run("--format", "json", "export")
    assert wrong.exit_code == 2
    assert one_error_line(wrong) == (
        "Error: --format 'json' does not apply to `lkmetrics export`, whose --format takes "
        "jsonl, csv.")
    # LKMETRICS_FORMAT is for agent records: it does not change a report
    monkeypatch.setenv("LKMETRICS_FORMAT", "json")
    assert "session s_two" in run("report", "last").stdout


def test_report_table_and_csv(recorded: list[dict[str, Any]]) -> None:
    table = run("report", "last")
    assert table.exit_code == 0, table.output
    assert "session s_two" in table.stdout
    for figure in FIGURES:
        assert figure.name in table.stdout
    assert "LLM tokens per model" in table.stdout
    result = run("report", "s_one", "--by", "kind", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["group"], r["figure"]) for r in rows] == [(f.kind, f.name) for f in FIGURES]
    e2e = [r["e2e_latency"] for r in recorded if r["session_id"] == "s_one" and r["kind"] == "turn"]
    row = next(r for r in rows if r["figure"] == "e2e")
    assert float(row["p95"]) == pytest.approx(float(np.percentile(e2e, 95)))
    assert int(row["count"]) == 12


def test_report_help_states_the_percentile_definition() -> None:
    result = run("report", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "linear" in text and "interpolat" in text and "numpy.percentile" in text
    assert "--fail-over" in text and "--since" in text and "--by" in text


def test_compare_json(recorded: list[dict[str, Any]]) -> None:
    result = run("compare", "s_one", "s_two", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    e2e = next(f for f in doc["figures"] if f["figure"] == "e2e")
    a = [r["e2e_latency"] for r in recorded if r["session_id"] == "s_one" and r["kind"] == "turn"]
    b = [r["e2e_latency"] for r in recorded if r["session_id"] == "s_two" and r["kind"] == "turn"]
    assert e2e["p50"]["a"] == pytest.approx(float(np.percentile(a, 50)))
    assert e2e["p95"]["b"] == pytest.approx(float(np.percentile(b, 95)))
    assert e2e["p50"]["ratio"] == pytest.approx(e2e["p50"]["b"] / e2e["p50"]["a"])
    assert e2e["verdict"] in ("better", "worse", "unclear")
    assert e2e["p50"]["ci95"][0] <= e2e["p50"]["diff"] <= e2e["p50"]["ci95"][1]
    assert e2e["count_a"] == len(a) and e2e["count_b"] == len(b)
    assert doc["verdict"] in ("better", "worse", "unclear")
    table = run("compare", "gpt-4.1-mini", "gpt-4o", "--by", "model")
    assert table.exit_code == 0, table.output
    assert "openai/gpt-4.1-mini" in table.stdout and "Overall: " in table.stdout


def test_export_import_round_trip(recorded: list[dict[str, Any]], tmp_path: Path) -> None:
    exported = run("export")
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line) for line in exported.stdout.splitlines()] == recorded
    dump = tmp_path / "dump.jsonl"
    dump.write_text(exported.stdout)
    other = tmp_path / "other.db"
    assert run("import", str(dump), "--db", str(other)).exit_code == 0
    again = run("export", "--db", str(other))
    assert again.stdout == exported.stdout
    one = run("export", "s_two", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(one.stdout)))
    assert {r["session_id"] for r in rows} == {"s_two"}
    assert [json.loads(r["json"]) for r in rows] == [r for r in recorded
                                                     if r["session_id"] == "s_two"]
    llm = next(r for r in rows if r["kind"] == "llm")
    assert llm["model"] == "openai/gpt-4o" and float(llm["llm_ttft"]) > 0


def test_import_reports_bad_lines_and_does_not_duplicate(tmp_path: Path) -> None:
    recs = list(session_records("s_b", turns=3))
    lines = [json.dumps(r) for r in recs]
    lines[5] = lines[5][: len(lines[5]) // 2]  # truncated mid-write
    lines.insert(2, "not json at all")
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(lines) + "\n")
    first = run("import", str(src))
    assert first.exit_code == 0, first.output
    assert f"{src}:3: skipped: not JSON" in first.stderr
    assert f"{src}:7: skipped: not JSON" in first.stderr
    assert f"Imported {len(recs) - 1} records" in first.stderr
    second = run("import", str(src))
    assert "Imported 0 records" in second.stderr
    assert f"{len(recs) - 1} already there" in second.stderr
    with Store.open(Path(os.environ["LKMETRICS_HOME"]) / "metrics.db") as s:
        assert s.count_records() == len(recs) - 1


def test_import_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    recs = [r for i in range(40) for r in session_records(f"s_{i:02d}", turns=20, seed=i)]
    src = write_jsonl(tmp_path / "p.jsonl", recs)
    with open(src, "a") as f:
        f.write("garbage\n")
    argv = ["-c", ENTRY.format(root=str(ROOT)), "import", str(src), "--db",
            str(tmp_path / "tty.db")]
    child = pexpect.spawn(sys.executable, argv, env=dict(os.environ), encoding="utf-8",
                          timeout=60, dimensions=(24, 120))
    screen = ANSI.sub("", child.read())
    child.close()
    assert child.exitstatus == 0, screen
    size_mb = f"{src.stat().st_size / 1e6:.1f}"
    assert re.search(rf"Importing .*100% {re.escape(size_mb)}/{re.escape(size_mb)} MB", screen)
    assert f"Imported {len(recs):,} records" in screen
    # a bad line is printed above the bar, on a line of its own, and the bar stays whole
    assert re.search(rf"[\r\n]{re.escape(str(src))}:{len(recs) + 1}: skipped: not JSON", screen)
    assert "[progress" not in screen
    missing = pexpect.spawn(sys.executable, [*argv[:3], str(tmp_path / "nope.jsonl"), "--db",
                                             str(tmp_path / "tty2.db")],
                            env=dict(os.environ), encoding="utf-8", timeout=60)
    said = ANSI.sub("", missing.read())
    missing.close()
    assert missing.exitstatus == 2 and "Traceback" not in said
    assert said.strip() == f"Error: {tmp_path / 'nope.jsonl'} is not a file; pass the JSON " \
        "lines written by --output."
    assert not (tmp_path / "tty2.db").exists()
    piped = subprocess.run([sys.executable, *argv[:-1], str(tmp_path / "piped.db")],
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and "Importing" not in piped.stderr
    assert piped.stderr.splitlines()[0].startswith(f"{src}:{len(recs) + 1}: skipped: not JSON")
    assert piped.stderr.splitlines()[1].startswith(f"Imported {len(recs):,} records")


def test_import_of_only_bad_lines_fails(tmp_path: Path) -> None:
    src = tmp_path / "junk.jsonl"
    src.write_text("junk\n{}\n")
    result = run("import", str(src))
    assert result.exit_code == 1
    assert "no valid records" in result.stderr


def test_budgets(recorded: list[dict[str, Any]]) -> None:
    e2e = [r["e2e_latency"] for r in recorded if r["kind"] == "turn"]
    p95 = float(np.percentile(e2e, 95))
    ok = run("report", "--fail-over", f"e2e.p95={p95 + 0.01:.3f}s", "--format", "json")
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["budgets"][0]["broken"] is False
    broken = run("report", "--fail-over", f"e2e.p95={p95 - 0.01:.3f}s",
                 "--fail-over", "llm.ttft.p50=1ms", "--fail-over", "tts.ttfb.max=9s")
    assert broken.exit_code == 1
    last = broken.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: 2 budgets broken: e2e.p95 = ")
    assert "llm.ttft.p50 = " in last and "tts.ttfb" not in last
    assert "budget tts.ttfb.max <= 9.00 s: ok" in broken.stderr
    assert "Figures" in broken.stdout  # the report is still printed
    malformed = run("report", "--fail-over", "e2e<1s")
    assert malformed.exit_code == 2
    assert "FIGURE.STAT=LIMIT" in one_error_line(malformed)


# -- faults: one line, non-zero exit, no traceback, data untouched ---------------------------


def test_empty_store(tmp_path: Path) -> None:
    for args in (["sessions"], ["report"], ["report", "last"], ["export"],
                 ["compare", "a", "b"]):
        err = one_error_line(run(*args))
        assert "no metrics database" in err
    assert not (Path(os.environ["LKMETRICS_HOME"]) / "metrics.db").exists()
    empty = tmp_path / "empty.db"
    Store.open(empty).close()
    err = one_error_line(run("report", "--db", str(empty)))
    assert "no sessions yet" in err


def test_missing_session(recorded: list[dict[str, Any]]) -> None:
    for args in (["report", "s_nope"], ["export", "s_nope"], ["compare", "s_one", "s_nope"]):
        err = one_error_line(run(*args))
        assert "no session 's_nope'" in err and "lkmetrics sessions" in err
    err = one_error_line(run("report", "s_"))  # a prefix of both
    assert "ambiguous" in err


def test_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("my precious notes\n" * 100)
    before = digest(db)
    for args in (["report"], ["sessions"], ["import", str(db)], ["export"]):
        err = one_error_line(run(*args, "--db", str(db)))
        assert "not an lkmetrics database" in err
    assert digest(db) == before


def test_corrupt_database(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Store.open(db) as s:
        s.insert(session_records("s_c", turns=200))
        s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    page = 4096
    for i in range(2 * page, len(data) - page, page):  # garble every page past the schema
        data[i + 8: i + 200] = b"\xa5" * 192
    db.write_bytes(bytes(data))
    before = digest(db)
    for args in (["report"], ["sessions"], ["export"]):
        err = one_error_line(run(*args, "--db", str(db)))
        assert "corrupt" in err or "not an lkmetrics database" in err, err
    assert digest(db) == before


def test_unwritable_db_path(tmp_path: Path, recorded: list[dict[str, Any]]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    src = tmp_path / "run.jsonl"
    err = one_error_line(run("import", str(src), "--db", str(blocker / "metrics.db")))
    assert "--db" in err
    err = one_error_line(run("import", str(src), "--db", str(tmp_path)))
    assert "is a directory" in err
    assert blocker.read_text() == "keep"


def test_bad_options_are_usage_errors(recorded: list[dict[str, Any]]) -> None:
    result = run("report", "--since", "yesterday")
    assert result.exit_code == 2 and "--since" in one_error_line(result)
    assert run("report", "--by", "color").exit_code == 2
    missing = run("import", "/nonexistent/file.jsonl")
    assert missing.exit_code == 2 and "is not a file" in one_error_line(missing)


def test_import_interrupted_by_ctrl_c_keeps_what_it_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = [r for i in range(20) for r in session_records(f"s_{i:02d}", turns=40, seed=i)]
    src = write_jsonl(tmp_path / "big.jsonl", recs)
    monkeypatch.setattr(parsing, "CHUNK_BYTES", 20_000)
    monkeypatch.setattr(importer, "IMPORT_TX_SECONDS", 0.0)  # commit every chunk
    calls = 0
    real = Store.insert_rows

    def flaky(self: Store, batch: Batch, status: str | None) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real(self, batch, status)

    monkeypatch.setattr(Store, "insert_rows", flaky)
    result = run("import", str(src))
    assert result.exit_code == 130
    err = one_error_line(result)
    assert "interrupted" in err and "again" in err
    monkeypatch.setattr(Store, "insert_rows", real)
    db = Path(os.environ["LKMETRICS_HOME"]) / "metrics.db"
    with Store.open(db) as s:
        kept = s.count_records()
    assert 0 < kept < len(recs)
    assert run("import", str(src)).exit_code == 0
    with Store.open(db) as s:
        assert s.count_records() == len(recs)


@pytest.mark.parametrize("after", [0.0, 0.05, 0.15])
def test_real_sigint_during_import_reports_what_it_committed(tmp_path: Path,
                                                              after: float) -> None:
    recs = [r for i in range(200) for r in session_records(f"s_{i:03d}", turns=40, seed=i)]
    src = write_jsonl(tmp_path / "big.jsonl", recs)
    db = tmp_path / "m.db"
    # the real entry point, committing every small chunk, so the signal lands mid-import
    code = ("import sys; from lkmetrics.store import importer, parsing; "
            "parsing.CHUNK_BYTES = 30_000; importer.IMPORT_TX_SECONDS = 0.0; "
            "from lkmetrics.cli import main; "
            "sys.argv = ['lkmetrics', *sys.argv[1:]]; main()")
    p = subprocess.Popen([sys.executable, "-c", code, "import", str(src), "--db", str(db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    committed = 0
    while committed == 0 and time.monotonic() < deadline and p.poll() is None:
        with contextlib.suppress(sqlite3.Error), \
                contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                   timeout=5)) as c:  # may not exist yet
            committed = c.execute("SELECT count(*) FROM records").fetchone()[0]
        time.sleep(0.005)
    time.sleep(after)  # the signal lands somewhere in the next chunks or their commit
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert "Traceback" not in err, err
    if p.returncode == 0:
        pytest.skip("the import finished before the signal arrived")
    assert p.returncode == 130, err
    m = re.search(r"interrupted while importing [^:]+: ([\d,]+) records were imported", err)
    assert m, err
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    assert int(m.group(1).replace(",", "")) == stored  # the count it says is the one it kept


def test_store_commands_do_not_import_livekit() -> None:
    code = (
        ENTRY.format(root=str(ROOT)).replace(
            "cli_app()(sys.argv[1:], prog_name='lkmetrics')",
            "import contextlib\n"
            "for cmd in ('report', 'export', 'sessions', 'compare', 'import'):\n"
            "    with contextlib.suppress(SystemExit):\n"
            "        cli_app()([cmd, '--help'], prog_name='lkmetrics')\n"
            "print('LIVEKIT' if any(m.split('.')[0] == 'livekit' for m in sys.modules) "
            "else 'CLEAN')",
        )
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "CLEAN"
