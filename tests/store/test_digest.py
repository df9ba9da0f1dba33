"""Session digests: what reports read from them is exactly what the records' columns give,
however the records got there (import, a live writer, a duplicate import, a session without
its opening record), and a digest never outlives a change of its session."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import tests.helpers.store as helpers
from lkmetrics.analysis import report
from lkmetrics.cost.prices import default_book
from lkmetrics.figures import FIGURES, STORED_FIGURES
from lkmetrics.store import Scope, Store, digest_values
from lkmetrics.store import digest as digest_module
from lkmetrics.store.digest import grouped_values, kind_totals, token_totals
from tests.helpers.store import run, session_records, write_jsonl

Record = dict[str, Any]
GROUPINGS = (None, "model", "session", "kind")


def _with_cost(records: list[Record]) -> list[Record]:
    """Turn records carrying their cost, as this version records them (one of them unknown)."""
    out = []
    for r in records:
        if r["kind"] == "turn":
            llm = 1e-5 * (r["seq"] % 5 + 1)
            if r["seq"] % 7 == 0:  # a model without a known price
                cost = {"total": None, "llm": None, "stt": 0.0, "tts": 2e-4}
            else:
                cost = {"total": llm + 2e-4, "llm": llm, "stt": 0.0, "tts": 2e-4}
            r = {**r, "cost": cost}
        out.append(r)
    return out


def _headless(sid: str) -> list[Record]:
    """A session without its opening record, whose LLM records name two models."""
    records = [r for r in session_records(sid, turns=6, seed=11, llm="openai/gpt-4o")
               if r["kind"] != "session"]
    for r in records:
        if r["kind"] == "llm" and r["seq"] % 2:
            r["metadata"] = {"model_name": "gpt-4.1-mini", "model_provider": "openai"}
    return records


def _records() -> list[Record]:
    records: list[Record] = []
    for i in range(6):
        llm = ("openai/gpt-4.1-mini", "openai/gpt-4o")[i % 2]
        recs = list(session_records(f"s_{i:02d}", turns=4 + i, seed=i, llm=llm,
                                    start=1_764_240_000.0 + 1000 * i))
        records += _with_cost(recs) if i % 3 else recs  # some recorded before costs were
    return records + _headless("s_headless")


def _open(path: Path) -> Store:
    return Store.open(path)


def _columns(store: Store, by: str | None) -> dict[str, dict[str, list[float]]]:
    return {f.name: store.figure_values(f, Scope(), by) for f in STORED_FIGURES}


def _assert_same_as_columns(store: Store) -> None:
    digests = store.digests()
    assert set(digests) == {r.id for r in store.sessions()}
    for by in GROUPINGS:
        assert grouped_values(digests, STORED_FIGURES, by) == _columns(store, by), by
    assert token_totals(digests.values()) == helpers.token_totals(store, Scope())
    assert kind_totals(digests.values()) == helpers.kind_counts(store, Scope())
    by_session = report.build_rows({f.name: store.figure_values(f, Scope(), "session")
                                    for f in FIGURES}, "session")
    assert report.digest_rows(digests) == by_session
    usage = helpers.last_usage_records(store, Scope())
    assert {sid: d.usage for sid, d in digests.items() if d.usage is not None} == usage


def _stored(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT session_id, changes FROM session_digests"))
    finally:
        conn.close()


def _fail_build(*args: object, **kwargs: object) -> None:
    raise AssertionError("a digest was rebuilt")


def test_import_writes_a_valid_digest_of_every_session(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_jsonl(tmp_path / "r.jsonl", _records())
    result = run("import", str(data))
    assert result.exit_code == 0, result.output
    db = home / "metrics.db"
    with _open(db) as store:
        assert set(_stored(db)) == {r.id for r in store.sessions()}
        monkeypatch.setattr(digest_values, "build", _fail_build)  # all valid: none rebuilt
        _assert_same_as_columns(store)


def test_digests_built_from_the_columns_equal_the_imported_ones(
        tmp_path: Path, home: Path) -> None:
    data = write_jsonl(tmp_path / "r.jsonl", _records())
    assert run("import", str(data)).exit_code == 0
    db = home / "metrics.db"
    with _open(db) as store:
        imported = store.digests()
        store.conn.execute("DELETE FROM session_digests")
        rebuilt = store.digests()
    assert rebuilt == imported
    assert set(_stored(db)) == set(imported)  # the report saved what it built


def test_a_session_written_after_its_digest_gets_a_new_one(tmp_path: Path, home: Path) -> None:
    records = _records()
    first = [r for r in records if r["session_id"] != "s_01" or r["seq"] <= 20]
    later = [r for r in records if r["session_id"] == "s_01" and r["seq"] > 20]
    assert later
    assert run("import", str(write_jsonl(tmp_path / "a.jsonl", first))).exit_code == 0
    db = home / "metrics.db"
    with _open(db) as store:
        before = store.digests()["s_01"]
        store.insert(later)  # as a live recorder writes: no digest built on the way
        after = store.digests()["s_01"]
        assert after != before
        assert after.kinds["turn"] == sum(1 for r in records
                                          if r["session_id"] == "s_01" and r["kind"] == "turn")
        _assert_same_as_columns(store)


def test_lines_repeated_in_one_file_are_counted_once(tmp_path: Path, home: Path) -> None:
    records = _records()
    twice = write_jsonl(tmp_path / "twice.jsonl", records + records[: len(records) // 3])
    assert run("import", str(twice)).exit_code == 0
    with _open(home / "metrics.db") as store:
        _assert_same_as_columns(store)


def test_a_long_import_saves_digests_on_the_way_and_stays_exact(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With little held, finished sessions are saved mid-import; a session that comes back
    later in the file (its records split) is rebuilt, not left with half its figures."""
    from lkmetrics.store import parsing

    records = _records()
    split = [r for r in records if r["session_id"] == "s_01"]
    rest = [r for r in records if r["session_id"] != "s_01"]
    data = write_jsonl(tmp_path / "r.jsonl", split[:10] + rest + split[10:])
    monkeypatch.setattr(parsing, "CHUNK_BYTES", 4000)  # many small batches
    monkeypatch.setattr(digest_values, "HELD_ROWS", 40)
    saved: list[int] = []
    real_save = digest_module.save

    def counting_save(conn: sqlite3.Connection, digests: Any, changes: Any) -> None:
        saved.append(len(digests))
        real_save(conn, digests, changes)

    monkeypatch.setattr(digest_module, "save", counting_save)
    assert run("import", str(data)).exit_code == 0
    assert len(saved) > 2  # saved on the way, not only at the end
    with _open(home / "metrics.db") as store:
        monkeypatch.setattr(digest_values, "build", _fail_build)  # every one valid
        _assert_same_as_columns(store)


def test_a_duplicate_import_keeps_the_digests_exact(tmp_path: Path, home: Path) -> None:
    records = _records()
    data = write_jsonl(tmp_path / "r.jsonl", records)
    half = write_jsonl(tmp_path / "half.jsonl", records[: len(records) // 2])
    assert run("import", str(half)).exit_code == 0
    assert run("import", str(data)).exit_code == 0  # half of it is there already
    assert run("import", str(data)).exit_code == 0  # all of it is
    with _open(home / "metrics.db") as store:
        _assert_same_as_columns(store)


def test_report_from_digests_equals_the_report_of_a_time_window(
        tmp_path: Path, home: Path) -> None:
    """``--since`` reads the columns; a window that holds everything gives the same report."""
    assert run("import", str(write_jsonl(tmp_path / "r.jsonl", _records()))).exit_code == 0
    with _open(home / "metrics.db") as store:
        book = default_book()
        for by in GROUPINGS:
            whole = report.summarise(store, report.select(store, None, None), by, book)
            window = report.summarise(store, report.select(store, None, "1970-01-02"), by,
                                      book)
            assert whole.rows == window.rows, by
            assert whole.tokens == window.tokens
            assert whole.usage == window.usage
            assert whole.cost is not None and window.cost is not None
            assert whole.cost.turn_values == window.cost.turn_values
            assert whole.cost.session_values == window.cost.session_values
            assert whole.cost.session_turn_values == window.cost.session_turn_values


@pytest.mark.parametrize("offset", [-1.0, 0.0, 5.0, 3000.0, 3005.0, 1e6])
def test_a_time_window_gives_what_the_columns_give(tmp_path: Path, home: Path,
                                                   offset: float) -> None:
    """``--since`` cutting sessions anywhere (before all, on a record, inside one, after
    all): whole sessions from their digests, a cut one from its records since then."""
    assert run("import", str(write_jsonl(tmp_path / "r.jsonl", _records()))).exit_code == 0
    since = 1_764_240_000.0 + offset
    with _open(home / "metrics.db") as store:
        for ids in (None, ("s_00", "s_03", "s_headless")):
            scope = Scope(ids, since)
            window = store.window(scope)
            for by in GROUPINGS:
                assert store.figures(STORED_FIGURES, scope, by) == {
                    f.name: store.figure_values(f, scope, by) for f in STORED_FIGURES}, by
            assert token_totals(window.values()) == helpers.token_totals(store, scope)
            assert kind_totals(window.values()) == helpers.kind_counts(store, scope)
            assert {sid: d.usage for sid, d in window.items() if d.usage is not None} == (
                helpers.last_usage_records(store, scope))
            where, params = scope.where()
            assert set(window) == {r[0] for r in store.conn.execute(
                f"SELECT DISTINCT session_id FROM records WHERE 1 = 1{where}", params)}


def test_a_busy_store_still_reports_without_waiting(tmp_path: Path, home: Path) -> None:
    """A digest that cannot be saved (another process writes) is used, not waited on."""
    assert run("import", str(write_jsonl(tmp_path / "r.jsonl", _records()))).exit_code == 0
    db = home / "metrics.db"
    sqlite3.connect(db).execute("DELETE FROM session_digests").connection.commit()
    with _open(db) as store:
        writer = sqlite3.connect(db, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            store.conn.execute("PRAGMA busy_timeout = 60000")  # waiting would hang the test
            digests = store.digests()
            assert len(digests) == 7
            assert _stored(db) == {}
        finally:
            writer.execute("ROLLBACK")
            writer.close()


def test_a_damaged_digest_is_rebuilt(tmp_path: Path, home: Path) -> None:
    assert run("import", str(write_jsonl(tmp_path / "r.jsonl", _records()))).exit_code == 0
    db = home / "metrics.db"
    with _open(db) as store:
        good = store.digests()
        store.conn.execute("UPDATE session_digests SET data = '{\"kinds\": 1}' "
                           "WHERE session_id = 's_00'")
        store.conn.execute("UPDATE session_digests SET packed = x'00' WHERE session_id = 's_02'")
        assert store.digests() == good
