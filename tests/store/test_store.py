"""The SQLite store: schema and migrations, extraction, recording, concurrency, kill -9."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lkmetrics import store as store_mod
from lkmetrics.errors import NotFoundError, StoreError
from lkmetrics.figures import FIGURES, FIGURES_BY_NAME, STORED_FIGURES, figure_value
from lkmetrics.pipeline import Pipeline
from lkmetrics.store import (
    FIGURE_COLUMNS,
    FLUSH_INTERVAL,
    LATEST_VERSION,
    Store,
    StoreWriter,
    default_db_path,
    extract,
    importer,
    parsing,
)
from lkmetrics.store.export import export_jsonl
from lkmetrics.store.importer import import_files
from lkmetrics.store.rows import session_models
from tests.helpers.common import TESTS, wait_gone
from tests.helpers.store import session_records, token_totals, write_jsonl

pytestmark = pytest.mark.usefixtures("wide")  # whole table rows

RECORDER = TESTS / "helpers" / "store_recorder.py"

# The first schema version, frozen here as shipped: the store must migrate it forward.
SCHEMA_V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, started REAL, ended REAL,
    command TEXT, stt TEXT, llm TEXT, tts TEXT, voice TEXT, host TEXT,
    lkmetrics_version TEXT, livekit_agents_version TEXT, exit_status TEXT
);
CREATE TABLE records (
    session_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, time REAL,
    json TEXT NOT NULL, UNIQUE (session_id, seq)
);
CREATE INDEX records_kind ON records (kind, session_id, seq);
PRAGMA user_version = 1;
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_path_is_in_lkmetrics_home(home: Path) -> None:
    assert default_db_path() == home / "metrics.db"


def test_open_creates_schema_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "new" / "m.db"
    with Store.open(db) as s:
        assert s.schema_version == LATEST_VERSION
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = {r[1] for r in s.conn.execute("PRAGMA table_info(records)")}
        assert {"session_id", "seq", "kind", "time", "json", "model"} <= cols
        assert set(FIGURE_COLUMNS.values()) <= cols
        tables = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master")}
        assert "session_digests" in tables


def test_every_figure_has_an_indexed_column() -> None:
    # every reported figure, and each turn's recorded cost
    assert {f.name for f in FIGURES} | {"cost.turn"} == set(FIGURE_COLUMNS)


def test_reporting_open_does_not_create_a_database(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no metrics database"):
        Store.open(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_migrates_a_first_version_database(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA_V1)
    recs = list(session_records("s_old", turns=6, seed=3))
    orphan = list(session_records("s_orphan", turns=2, seed=4, start=1_764_300_000.0))
    conn.execute("INSERT INTO sessions (id, started, llm, exit_status) VALUES (?, ?, ?, ?)",
                 ("s_old", recs[0]["time"], "openai/gpt-4.1-mini", "ok"))
    conn.executemany(
        "INSERT INTO records (session_id, seq, kind, time, json) VALUES (?, ?, ?, ?, ?)",
        [(r["session_id"], r["seq"], r["kind"], r["time"], json.dumps(r)) for r in recs + orphan],
    )
    conn.commit()
    conn.close()

    with Store.open(db) as s:
        assert s.schema_version == LATEST_VERSION
        # the figure columns were backfilled from the JSON, as figures.figure_value reads them
        for figure in FIGURES:
            col = FIGURE_COLUMNS[figure.name]
            stored = sorted(v for (v,) in s.conn.execute(
                f"SELECT {col} FROM records WHERE {col} IS NOT NULL"))
            expected = sorted(
                v for r in recs + orphan if (v := figure_value(figure, r)) is not None
            )
            assert stored == pytest.approx(expected), figure.name
        assert s.conn.execute("SELECT count(*) FROM records").fetchone()[0] == len(recs + orphan)
        # a session that only had records got a row, spanning its records
        orphan_row = s.session("s_orphan")
        assert orphan_row.started == orphan[0]["time"]
        assert orphan_row.ended == orphan[-1]["time"]
        assert s.session("s_old").exit_status == "ok"
        tokens = {m: (n, p) for m, n, p, _, _ in token_totals(s, store_mod.Scope())}
        assert tokens["openai/gpt-4.1-mini"] == (
            8, sum(r["prompt_tokens"] for r in recs + orphan if r["kind"] == "llm"))
    # opening again is a no-op
    with Store.open(db) as s:
        assert s.schema_version == LATEST_VERSION


def test_migrates_a_version_2_database_to_the_turn_stage_columns(tmp_path: Path) -> None:
    from lkmetrics.store import schema

    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db)
    schema.m001_sessions_and_records(conn)
    schema.m002_figure_columns(conn)
    conn.execute("PRAGMA user_version = 2")
    recs = list(session_records("s_v2", turns=8, seed=5))
    conn.executemany(
        "INSERT INTO records (session_id, seq, kind, time, json) VALUES (?, ?, ?, ?, ?)",
        [(r["session_id"], r["seq"], r["kind"], r["time"], json.dumps(r)) for r in recs],
    )
    conn.commit()
    conn.close()
    with Store.open(db) as s:
        assert s.schema_version == LATEST_VERSION
        for name in ("turn.first_sentence", "turn.unexplained"):
            figure = FIGURES_BY_NAME[name]
            col = FIGURE_COLUMNS[name]
            stored = sorted(v for (v,) in s.conn.execute(
                f"SELECT {col} FROM records WHERE {col} IS NOT NULL"))
            expected = sorted(v for r in recs if (v := figure_value(figure, r)) is not None)
            assert len(expected) == 8 and stored == pytest.approx(expected), name


def test_refuses_a_newer_schema_without_touching_it(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    with Store.open(db) as s:
        s.conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    before = digest(db)
    with pytest.raises(StoreError, match="newer than this lkmetrics"):
        Store.open(db)
    assert digest(db) == before


def test_refuses_another_apps_sqlite_database(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = digest(db)
    with pytest.raises(StoreError, match="not an lkmetrics store"):
        Store.open(db)
    assert digest(db) == before


def test_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("these are my notes, not a database\n" * 200)
    before = digest(db)
    with pytest.raises(StoreError, match="not an lkmetrics database"):
        Store.open(db)
    assert digest(db) == before
    assert not Path(f"{db}-wal").exists()


@pytest.mark.parametrize("where", ["under_a_file", "directory"])
def test_unwritable_path_is_a_store_error(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    path = blocker / "metrics.db" if where == "under_a_file" else tmp_path
    with pytest.raises(StoreError) as err:
        StoreWriter(path)
    assert "\n" not in str(err.value)
    assert blocker.read_text() == "x"


def _edge_records() -> list[dict[str, Any]]:
    base: dict[str, Any] = {"schema": 1, "session_id": "s_e", "time": 1.0}
    out: list[dict[str, Any]] = []
    edges: list[tuple[str, dict[str, Any]]] = [
        ("llm", {"ttft": -1.0, "duration": 0.5, "decode_rate": None}),  # not measured
        ("llm", {"ttft": 0.3, "duration": True, "decode_rate": 12.5}),  # bool is not a number
        ("llm", {"ttft": 0, "duration": 1, "decode_rate": 3,
                 "metadata": {"model_name": "m"}}),
        ("stt", {"duration": 0.0, "streamed": True}),  # streaming STT: no request duration
        ("stt", {"duration": 0.0, "streamed": False}),
        ("tts", {"ttfb": float("nan")}),
        ("tts", {"ttfb": "0.2"}),
        ("eou", {"end_of_utterance_delay": 0.4, "transcription_delay": -0.1}),
        ("turn", {"e2e_latency": 1.25}),
        ("vad", {"idle_time": 3.0}),
    ]
    for seq, (kind, fields) in enumerate(edges, 1):
        out.append({**base, "kind": kind, "seq": seq, **fields})
    return out


def test_extracted_columns_equal_stats_figure_value() -> None:
    records = _edge_records() + list(session_records("s_x", turns=10, seed=9))
    for r in records:
        columns = extract(r)
        figures = {FIGURE_COLUMNS[f.name]: f for f in STORED_FIGURES if f.kind == r["kind"]}
        assert set(figures) <= set(columns)
        for col, value in columns.items():
            if col in figures:
                want = figure_value(figures[col], r)
                assert value == want or math.isclose(value, want), (col, r)  # type: ignore
            elif col == "model":
                # component metrics always carry a model; turn and EOU records their
                # session's LLM, known only with the session's opening record
                assert value or r["kind"] in ("turn", "eou")
            else:
                assert col in ("prompt_tokens", "completion_tokens", "total_tokens")
                assert r["kind"] == "llm"
    assert extract({"kind": "vad", "idle_time": 1.0}) == {}
    assert extract(_edge_records()[2])["model"] == "m"
    assert extract(_edge_records()[0])["llm_ttft"] is None  # -1: not measured
    assert extract(_edge_records()[3])["stt_duration"] is None  # streamed


def test_store_writer_records_a_session(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    writer = StoreWriter(db)
    pipeline = Pipeline([writer])
    recs = list(session_records("s_live", turns=4, seed=1, summary=False))
    for r in recs:  # bodies, as capture makes them: the pipeline adds the envelope
        pipeline.put("s_live", {k: v for k, v in r.items()
                                if k not in ("schema", "session_id", "seq", "time")})
    writer.exit_status = "interrupted"
    pipeline.close()
    assert writer.errors == [] and pipeline.errors == []
    with Store.open(db) as s:
        row = s.session("s_live")
        assert (row.command, row.llm, row.stt, row.tts, row.host) == (
            "console", "openai/gpt-4.1-mini", "deepgram/nova-3", "cartesia/sonic-3", "testhost")
        assert (row.lkmetrics_version, row.livekit_agents_version) == ("0.1.0", "1.8.9")
        assert row.exit_status == "interrupted"
        stored = [json.loads(j) for (j,) in s.conn.execute(
            "SELECT json FROM records WHERE session_id = 's_live' ORDER BY seq")]
        # every record, whole, then the summary the pipeline adds at close
        assert [{k: v for k, v in r.items() if k != "time"} for r in stored[:-1]] == [
            {k: v for k, v in r.items() if k != "time"} for r in recs]
        assert stored[-1]["kind"] == "summary" and stored[-1]["turns"] == 4
        assert row.started == stored[0]["time"]
        assert row.ended == stored[-1]["time"]


def test_store_writer_commits_within_the_flush_interval(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    writer = StoreWriter(db)
    try:
        for r in session_records("s_t", turns=1, summary=False):
            writer.write(r)
        deadline = time.monotonic() + FLUSH_INTERVAL + 1.0
        count = 0
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as other:  # another reader, as another process would be
                count = other.execute("SELECT count(*) FROM records").fetchone()[0]
            if count == 8:
                break
            time.sleep(0.02)
        assert count == 8
        assert sqlite3.connect(db).execute(
            "SELECT exit_status FROM sessions").fetchone()[0] == "running"
    finally:
        writer.close()


def _recorder(db: Path, sid: str, count: int, interval: float,
              start: Path | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, str(RECORDER), str(db), sid, str(count), str(interval)]
    if start is not None:
        args.append(str(start))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _open_at(db: str, ready: Any, go: Any, results: Any) -> None:
    ready.put("ready")
    go.wait()
    try:
        Store.open(Path(db)).close()
        results.put("ok")
    except StoreError as e:
        results.put(str(e))


def test_many_processes_create_one_new_database_together(tmp_path: Path) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at
    # once (no busy handler) to the losers of that race: before the fix about one round in
    # four failed here.
    ctx = multiprocessing.get_context("fork")
    for round_ in range(30):
        db = tmp_path / f"r{round_}.db"
        ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_open_at, args=(str(db), ready, go, results))
                 for _ in range(8)]
        for proc in procs:
            proc.start()
        for _ in procs:  # every process is waiting at the start line
            ready.get(timeout=60)
        go.set()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=10)
        assert outcomes == ["ok"] * 8, (round_, outcomes)
        with Store.open(db) as s:
            assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert s.schema_version == store_mod.LATEST_VERSION


def test_four_processes_write_one_database(tmp_path: Path) -> None:
    db = tmp_path / "shared" / "m.db"  # does not exist yet: all four create/migrate at once
    start = tmp_path / "go"
    n = 1500
    procs = [_recorder(db, f"s_p{i}", n, 0.0, start) for i in range(4)]
    for p in procs:  # each recorder has its writer open and waits for the start file
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.communicate()
    start.touch()
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    with Store.open(db) as s:
        for i in range(4):
            seqs = [q for (q,) in s.conn.execute(
                "SELECT seq FROM records WHERE session_id = ? ORDER BY seq", (f"s_p{i}",))]
            assert seqs == list(range(1, n + 3))  # session record, n turns, summary
            assert s.session(f"s_p{i}").exit_status == "ok"
        assert s.count_records() == 4 * (n + 2)
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_kill_9_loses_at_most_the_last_batch(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    p = _recorder(db, "s_killed", 100_000, 0.005)
    assert p.stdout is not None
    put: list[tuple[int, float]] = []
    for line in p.stdout:
        seq, t = line.split()
        put.append((int(seq), float(t)))
        if len(put) >= 200:
            break
    killed_at = time.time()
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Store.open(db) as s:
        seqs = [q for (q,) in s.conn.execute(
            "SELECT seq FROM records WHERE session_id = 's_killed' ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))  # a prefix: nothing missing in between
        # every record handed over more than one flush interval (+ scheduling slack) before
        # the kill is in the database
        slack = 0.25
        old = [seq for seq, t in put if t < killed_at - FLUSH_INTERVAL - slack]
        assert old, "the recorder ran too briefly to test anything"
        assert seqs[-1] >= max(old)
        assert s.session("s_killed").exit_status == "running"


def test_import_is_idempotent_and_reports_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "run.jsonl"
    recs = list(session_records("s_i", turns=5, seed=2))
    lines = [json.dumps(r) for r in recs]
    lines.insert(3, '{"kind": "llm", "seq": 9')  # truncated
    lines.insert(6, '["not", "an", "object"]')
    lines.insert(8, json.dumps({**recs[1], "seq": "x"}))
    lines.insert(9, "")
    src.write_text("\n".join(lines) + "\n")
    bad: list[tuple[str, int, str]] = []
    with Store.open(tmp_path / "m.db") as s:
        r1 = import_files(s, [src], lambda f, n, why: bad.append((f, n, why)))
        assert (r1.imported, r1.duplicates, r1.bad) == (len(recs), 0, 3)
        assert [(f, n) for f, n, _ in bad] == [(str(src), 4), (str(src), 7), (str(src), 9)]
        assert "not JSON" in bad[0][2] and "object" in bad[1][2] and "seq" in bad[2][2]
        r2 = import_files(s, [src], lambda *a: None)
        assert (r2.imported, r2.duplicates) == (0, len(recs))
        assert s.count_records() == len(recs)
        assert s.session("s_i").llm == "openai/gpt-4.1-mini"


def test_parallel_import_equals_serial_import(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    recs = [r for i in range(6) for r in session_records(f"s_{i}", turns=30, seed=i,
                                                         start=1_764_000_000.0 + i * 1000)]
    src = write_jsonl(tmp_path / "all.jsonl", recs)
    with open(src, "a") as f:
        f.write("garbage\n")
    monkeypatch.setattr(parsing, "CHUNK_BYTES", 4096)  # many chunks
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    bad_serial: list[int] = []
    bad_parallel: list[int] = []
    with Store.open(tmp_path / "a.db") as a, Store.open(tmp_path / "b.db") as b:
        ra = import_files(a, [src], lambda f, n, w: bad_serial.append(n), workers=0)
        rb = import_files(b, [src], lambda f, n, w: bad_parallel.append(n), workers=2)
        assert ra == rb and ra.imported == len(recs) and ra.bad == 1
        assert bad_serial == bad_parallel == [len(recs) + 1]
        dump = "SELECT session_id, seq, kind, json, e2e, llm_ttft FROM records ORDER BY 1, 2"
        assert a.conn.execute(dump).fetchall() == b.conn.execute(dump).fetchall()


@pytest.mark.parametrize("workers", [0, 2])
def test_import_progress_adds_up_to_the_input_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    recs = [r for i in range(4) for r in session_records(f"s_{i}", turns=30, seed=i)]
    src = write_jsonl(tmp_path / "all.jsonl", recs)
    monkeypatch.setattr(parsing, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    steps: list[int] = []
    with Store.open(tmp_path / "p.db") as s:
        import_files(s, [src], lambda *a: None, workers=workers, progress=steps.append)
    size = src.stat().st_size
    assert sum(steps) == size
    # a chunk is 4096 bytes plus the rest of the line it ends in
    longest = max(len(line) for line in src.read_bytes().splitlines(keepends=True))
    assert len(steps) >= size // (4096 + longest) and all(n > 0 for n in steps)


def _reference_parse(data: bytes, first: int = 1) -> tuple[list[tuple[Any, ...]],
                                                          list[tuple[int, str]]]:
    """What an import made of each line before the fast path: the rows and the bad lines."""
    rows: list[tuple[Any, ...]] = []
    bad: list[tuple[int, str]] = []
    known: dict[str, Any] = {}  # session id -> its model identities, once its record is seen
    for lineno, raw in enumerate(data.split(b"\n"), first):
        raw = raw.strip()
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append((lineno, "not UTF-8 text"))
            continue
        try:
            record = json.loads(text)
        except ValueError as e:
            bad.append((lineno, f"not JSON ({e})"))
            continue
        reason = store_mod.check_record(record)
        if reason is not None:
            bad.append((lineno, reason))
            continue
        if record["kind"] == "session":
            known[record["session_id"]] = session_models(record)
        rows.append(store_mod.row_of(record, text, known.get(record["session_id"]))[1])
    return rows, bad


def _tricky_lines() -> list[bytes]:
    """Lines where a fast parse or a fast envelope check could differ from the slow one."""
    good = {"schema": 1, "kind": "llm", "session_id": "s_t", "time": 100.5,
            "ttft": 0.25, "duration": 1.5, "decode_rate": 30.0, "prompt_tokens": 10,
            "completion_tokens": 5, "total_tokens": 15,
            "metadata": {"model_name": "gpt-4o", "model_provider": "openai"}}
    seq = iter(range(1, 1000))

    def line(**fields: object) -> bytes:
        return json.dumps({**good, "seq": next(seq), **fields}).encode()

    return [
        line(),
        line(time=100),  # an int time
        line(time=float("inf")),  # Infinity: parses, but is not a numeric time
        line(time=float("nan")),
        line(time=True),
        line(seq=True),
        line(seq=-1),
        line(seq=2.0),
        line(session_id=""),
        line(kind=""),
        line(schema=2),  # newer than this lkmetrics reads
        line(schema=None),
        line(schema="1"),
        line(schema=True),
        json.dumps({k: v for k, v in good.items() if k != "schema"} | {"seq": 900}).encode(),
        line(ttft=-1.0, duration=0, decode_rate=float("nan")),
        line(ttft=True, duration=1e400, decode_rate="12"),
        line(prompt_tokens=10.7, completion_tokens=True, total_tokens=float("nan")),
        line(prompt_tokens=2**70, completion_tokens=-3, total_tokens=None),
        line(kind="stt", duration=0.0, streamed=True),
        line(kind="stt", duration=0, streamed=False),
        line(kind="tts", ttfb=0.0),
        line(kind="session", llm="openai/gpt-4o", command="console"),
        line(kind="custom.kind", label="x"),
        line(note="caf\u00e9 \u2603 \U0001f600 \\ \" \u0000"),
        line(note="\ud800"),  # a lone surrogate: json.loads accepts it, orjson does not
        b'{"schema":1,"kind":"turn","session_id":"s_t","seq":950,"time":1.0,"e2e_latency":NaN}',
        b'{"schema":1,"kind":"turn","session_id":"s_t","seq":951,"time":1.0,"e2e_latency":1,'
        b'"e2e_latency":2}',  # a duplicate key: the last one wins
        b'{"schema":1,"kind":"turn","session_id":"s_t","seq":952,"time":1.0,"n":'
        + b"9" * 40 + b"}",
        b'{"schema":1,"kind":"turn","session_id":"s_t","seq":953,"time":1.0} trailing',
        b'{"schema":1,"kind":"turn","session_id":"s_t","seq":954,"time":1.0}\xc2\xa0',  # NBSP
        b'\xef\xbb\xbf{"schema":1,"kind":"turn","session_id":"s_t","seq":955,"time":1.0}',
        b' \t{"schema":1,"kind":"turn","session_id":"s_t","seq":956,"time":1.5e0}\x0c\r',
        b'{"schema":1,"kind":"turn","session_id":"s_t","seq":957,"time":-0.0,"x":[1,{"y":[]}]}',
        b"\xff\xfe not utf-8",
        b"",
        b"   ",
        b"[1, 2]",
        b'"just a string"',
        b"null",
        b"{",
        b"{}",
    ]


@pytest.mark.parametrize("parser", ["installed", "stdlib"])
def test_import_parses_lines_exactly_as_json_loads_and_check_record(
    parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if parser == "stdlib":
        monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson raises ImportError
    monkeypatch.setattr(parsing, "_LOADS", None)
    lines = _tricky_lines()
    data = b"\n".join(lines) + b"\n"
    rows, bad = _reference_parse(data, 7)
    assert len(rows) > 10 and len(bad) > 25  # the lines exercise both outcomes

    batch, got_bad, count = parsing.parse_chunk(data, 7)
    assert count == len(lines)
    assert got_bad == bad
    got_rows = [row for group in batch.groups.values() for row in group]
    key = lambda row: row[1]  # noqa: E731  (rows are grouped by statement, not in line order)
    assert sorted(got_rows, key=key) == sorted(rows, key=key)
    assert batch.size == len(rows)
    for row in got_rows:  # the same types, not just equal values (1 == 1.0 == True)
        want = next(r for r in rows if r[1] == row[1])
        assert [type(v) for v in row] == [type(v) for v in want], row
    assert batch.sessions.span == {"s_t": [min(r[3] for r in rows), max(r[3] for r in rows)]}
    assert batch.sessions.info["s_t"]["command"] == "console"


def _import_lines(tmp_path: Path, name: str, data: bytes, workers: int) -> tuple[
        importer.ImportResult, list[int], list[tuple[object, ...]]]:
    src = tmp_path / f"{name}.jsonl"
    src.write_bytes(data)
    bad: list[int] = []
    with Store.open(tmp_path / f"{name}.db") as s:
        result = import_files(s, [src], lambda f, n, why: bad.append(n), workers=workers)
        dump = s.conn.execute(
            "SELECT session_id, seq, kind, time, json, model, llm_ttft, prompt_tokens "
            "FROM records ORDER BY 1, 2").fetchall()
    return result, bad, dump


@pytest.mark.parametrize("chunk", [1, 97, 600, 4096])
def test_parallel_import_splits_a_file_on_line_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # long and short lines, CRLF endings, blank and bad lines, no newline at the end: every
    # line is read by exactly one worker, whatever falls on a chunk boundary
    recs = list(session_records("s_c", turns=6, seed=5))
    lines = [json.dumps(r).encode() for r in recs]
    lines[3] += b"\r"
    lines.insert(5, b"")
    lines.insert(7, b"not json")
    lines.insert(9, json.dumps({**recs[2], "seq": 500, "pad": "x" * 5000}).encode())
    lines.insert(12, b"\xff")
    data = b"\n".join(lines)  # no newline after the last line
    monkeypatch.setattr(parsing, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    serial = _import_lines(tmp_path, "serial", data, 0)
    assert serial[0].imported == len(recs) + 1 and serial[1] == [8, 13]
    assert serial[0].lines == len(lines)
    for workers in (1, 3):
        assert _import_lines(tmp_path, f"parallel{workers}", data, workers) == serial


def test_import_worker_failures_reach_the_importer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("the workers see this test's patches only when forked")
    src = write_jsonl(tmp_path / "a.jsonl", list(session_records("s_w", turns=20)))
    monkeypatch.setattr(parsing, "CHUNK_BYTES", 2000)
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)

    def boom(data: bytes, first: int, *known: object) -> object:
        raise RuntimeError("boom")

    def die(data: bytes, first: int, *known: object) -> object:
        os._exit(3)

    with Store.open(tmp_path / "m.db") as s:
        monkeypatch.setattr(parsing, "parse_chunk", boom)
        with pytest.raises(RuntimeError, match="boom"):
            import_files(s, [src], lambda *a: None, workers=1)
        monkeypatch.setattr(parsing, "parse_chunk", die)
        with pytest.raises(StoreError, match="worker stopped unexpectedly"):
            import_files(s, [src], lambda *a: None, workers=2)
        assert s.count_records() == 0
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


IMPORTER = """
import sys, time
from pathlib import Path
from lkmetrics import store
from lkmetrics.store import importer, parsing
from lkmetrics.store.importer import import_files
parsing.CHUNK_BYTES = 30_000
importer.PARALLEL_MIN_BYTES = 0
importer.IMPORT_TX_SECONDS = 0.0  # commit every chunk
real = store.Store.insert_rows
def slow(self, batch, status):
    time.sleep(0.02)
    return real(self, batch, status)
store.Store.insert_rows = slow
with store.Store.open(Path(sys.argv[1])) as s:
    import_files(s, [Path(sys.argv[2])], print, workers=int(sys.argv[3]))
"""


@pytest.mark.parametrize("workers", [0, 1])
def test_kill_9_during_import_keeps_a_prefix_of_committed_chunks(
    tmp_path: Path, workers: int
) -> None:
    recs = [r for i in range(40) for r in session_records(f"s_{i:03d}", turns=20, seed=i)]
    src = write_jsonl(tmp_path / "big.jsonl", recs)
    db = tmp_path / "m.db"
    Store.open(db).close()
    p = subprocess.Popen([sys.executable, "-c", IMPORTER, str(db), str(src), str(workers)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    conn = sqlite3.connect(db, timeout=5)
    deadline = time.monotonic() + 30
    while conn.execute("SELECT count(*) FROM records").fetchone()[0] < 500:
        if p.poll() is not None:
            pytest.fail(f"the import ended before the kill: {p.communicate()}")
        assert time.monotonic() < deadline, "the import committed nothing in 30 s"
        time.sleep(0.005)
    children = Path(f"/proc/{p.pid}/task/{p.pid}/children")
    workers_pids = children.read_text().split() if children.exists() else []
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    conn.close()
    # an orphaned worker finds its pipe broken and exits
    for pid in workers_pids:
        assert wait_gone(pid, 10), "an import worker outlived the importer"

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Store.open(db) as s:
        stored = s.conn.execute("SELECT session_id, seq FROM records ORDER BY rowid").fetchall()
        file_order = [(r["session_id"], r["seq"]) for r in recs]
        assert 500 <= len(stored) < len(recs)
        assert sorted(stored) == sorted(file_order[:len(stored)])  # a prefix of the file
        result = import_files(s, [src], lambda *a: None, workers=workers)
        assert (result.imported, result.duplicates) == (len(recs) - len(stored), len(stored))
        assert s.count_records() == len(recs)


def test_export_streams_records_in_session_order(tmp_path: Path) -> None:
    import io

    first = list(session_records("s_b", turns=2, start=1000.0))
    second = list(session_records("s_a", turns=3, start=2000.0))
    with Store.open(tmp_path / "m.db") as s:
        s.insert(second + first)
        out = io.StringIO()
        n = export_jsonl(s, s.session_ids_oldest_first(), out)
    assert n == len(first) + len(second)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == first + second


def test_integers_beyond_sqlite_range_are_bad_lines_not_a_crash(tmp_path: Path) -> None:
    from lkmetrics.store import Store

    path = tmp_path / "big.jsonl"
    good = {"schema": 1, "kind": "llm", "session_id": "s_big", "seq": 1, "time": 1.0,
            "ttft": 0.2, "prompt_tokens": 2**70}
    too_big = dict(good, seq=2**64)
    path.write_text(json.dumps(good) + "\n" + json.dumps(too_big) + "\n")
    bad: list[tuple[str, int, str]] = []
    store = Store.open(tmp_path / "m.db")
    try:
        result = import_files(store, [path], lambda f, n, why: bad.append((str(f), n, why)))
    finally:
        store.close()
    # issue 8: a token count out of range is refused too (a sum of two would overflow)
    assert result.imported == 0 and result.bad == 2
    assert [(n, why) for _, n, why in bad] == [
        (1, "prompt_tokens is not a token count (an integer from 0 to 2^40)"),
        (2, "no integer seq (0 to 2^63-1)")]
