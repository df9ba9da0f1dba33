"""A store this process cannot write (issue 22): the commands that only read it read it
read-only; one that writes says so in one line, exit 1; one too old to read without a
migration says it needs an upgrade. Run as the real CLI in a process that file modes bind
(tests.helpers.privileges): root ignores them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lkmetrics.store import schema
from tests.helpers.common import subprocess_env
from tests.helpers.llm_server import LLMServer
from tests.helpers.privileges import unprivileged_env, unprivileged_python
from tests.helpers.store import run, session_records, write_jsonl

pytestmark = pytest.mark.timeout(180)

# each command that only reads the store, and what its output must show of the two sessions
READERS = [(("sessions", "-n", "0"), ("s_ro_a", "s_ro_b")), (("report",), ("2 sessions",)),
           (("report", "s_ro_b", "--by", "model"), ("gpt-4.1-mini",)),
           (("compare", "s_ro_a", "s_ro_b"), ("s_ro_a", "s_ro_b")), (("export",), ()),
           (("plot", "--by", "session"), ("s_ro_a", "s_ro_b"))]


@pytest.fixture
def lkmetrics_as_unprivileged() -> list[str]:
    found = unprivileged_python()
    if found is None:
        pytest.skip(f"running as uid {os.geteuid()} with no way to drop privileges "
                    "(no setpriv): file modes cannot be tested")
    return found[0]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's tmp_path is under a 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="lkmetrics-ro-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(path)


def as_unprivileged(argv: list[str], *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(**unprivileged_env(), HOME=str(home), LKMETRICS_HOME=str(home),
                         COLUMNS="200")
    return subprocess.run([*argv, "-m", "lkmetrics", *args], capture_output=True, text=True,
                          env=env, cwd=str(home), timeout=120)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_store(folder: Path) -> tuple[Path, list[dict[str, object]]]:
    records = [*session_records("s_ro_a", turns=6, seed=1),
               *session_records("s_ro_b", turns=6, seed=2, start=1_764_300_000.0)]
    db = folder / "store" / "metrics.db"
    result = run("import", str(write_jsonl(folder / "in.jsonl", records)), "--db", str(db))
    assert result.exit_code == 0, result.output
    return db, records


def lock(db: Path, folder_too: bool) -> None:
    db.chmod(0o444)
    db.parent.chmod(0o555 if folder_too else 0o777)  # 0o777: the unprivileged user may write


@pytest.mark.parametrize("folder_too", [True, False], ids=["folder_read_only", "file_only"])
@pytest.mark.parametrize("argv,shown", READERS, ids=[" ".join(a) for a, _ in READERS])
def test_a_read_only_store_is_read_by_the_commands_that_only_read(
        lkmetrics_as_unprivileged: list[str], public_dir: Path, argv: tuple[str, ...],
        shown: tuple[str, ...], folder_too: bool) -> None:
    db, records = make_store(public_dir)
    lock(db, folder_too)
    before, files = sha(db), sorted(db.parent.iterdir())
    done = as_unprivileged(lkmetrics_as_unprivileged, *argv, "--db", str(db), home=public_dir)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
    if argv[0] == "export":  # every record, exactly as recorded
        assert [json.loads(line) for line in done.stdout.splitlines()] == records
    assert all(words in done.stdout for words in shown), done.stdout
    assert sha(db) == before
    if folder_too:
        assert sorted(db.parent.iterdir()) == files


@pytest.mark.parametrize("folder_too", [True, False], ids=["folder_read_only", "file_only"])
@pytest.mark.parametrize("command", ["import", "bench llm"])
def test_a_write_command_on_a_read_only_store_is_one_line_before_it_runs(
        lkmetrics_as_unprivileged: list[str], public_dir: Path, folder_too: bool,
        command: str, llm_server: LLMServer) -> None:
    db, _ = make_store(public_dir)
    more = write_jsonl(public_dir / "more.jsonl", session_records("s_ro_c", turns=2, seed=3))
    lock(db, folder_too)
    before = sha(db)
    argv = (["import", str(more)] if command == "import" else
            ["bench", "llm", "--llm-base-url", llm_server.url, "--llm", "x/test-model", "-n",
             "2", "--warmup", "0"])
    done = as_unprivileged(lkmetrics_as_unprivileged, *argv, "--db", str(db), home=public_dir)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "read-only" in lines[0], lines
    assert done.stdout == "" and llm_server.script.requests == []  # nothing ran unrecorded
    assert sha(db) == before


def test_a_read_only_store_older_than_the_schema_says_it_needs_an_upgrade(
        lkmetrics_as_unprivileged: list[str], public_dir: Path) -> None:
    (public_dir / "store").mkdir()
    db = public_dir / "store" / "metrics.db"
    conn = sqlite3.connect(db)  # version 1, as the first lkmetrics left it
    schema.m001_sessions_and_records(conn)
    conn.execute("PRAGMA user_version = 1")
    recs = session_records("s_old", turns=3, seed=4)
    conn.executemany(
        "INSERT INTO records (session_id, seq, kind, time, json) VALUES (?, ?, ?, ?, ?)",
        [(r["session_id"], r["seq"], r["kind"], r["time"], json.dumps(r)) for r in recs])
    conn.commit()
    conn.close()
    lock(db, folder_too=True)
    before = sha(db)
    for argv in (("sessions",), ("report",), ("export",)):
        done = as_unprivileged(lkmetrics_as_unprivileged, *argv, "--db", str(db),
                               home=public_dir)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), lines
        assert "read-only" in lines[0] and "schema 1" in lines[0] and "upgrade" in lines[0]
        assert sha(db) == before
    # made writable, the same command upgrades and reads it
    db.parent.chmod(0o777)  # the unprivileged user's to write, as its own store would be
    db.chmod(0o666)
    done = as_unprivileged(lkmetrics_as_unprivileged, "sessions", "--db", str(db),
                           home=public_dir)
    assert done.returncode == 0 and "s_old" in done.stdout, done.stderr
