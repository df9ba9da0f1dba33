"""Issue 8, the store: what import accepts can never break reading afterwards.

Each poisonous line is reported as ``FILE:LINE: skipped: reason`` while the good lines of the
same chunk are imported; stores written by older versions are read (and cleaned) without a
traceback; a property test throws arbitrary JSON objects at import, export, sessions and
report.
"""

from __future__ import annotations

import gzip
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lkmetrics.store import Store
from lkmetrics.store.schema import _V1
from lkmetrics.store.validate import problem
from tests.helpers.store import run, session_records, write_jsonl

GOOD = {"schema": 1, "kind": "llm", "session_id": "s_p", "time": 1_764_240_000.5,
        "ttft": 0.25, "duration": 1.5, "decode_rate": 30.0, "prompt_tokens": 10,
        "completion_tokens": 5, "total_tokens": 15,
        "metadata": {"model_name": "gpt-4o", "model_provider": "openai"}}


def line(seq: int, **fields: Any) -> str:
    return json.dumps({**GOOD, "seq": seq, **fields})


# (name, a JSON line that must be skipped, words of the reason)
POISON = [
    ("metadata string", line(2, metadata="gpt"), "metadata is a string"),
    ("model_name number", line(3, metadata={"model_name": 7}), "metadata.model_name"),
    ("400-digit time", line(4).replace('1764240000.5', "9" * 400), "time"),
    ("lone surrogate", line(5, note="\ud800"), "lone surrogate"),
    ("time 1e300", line(6, time=1e300), "between 1970 and 9999"),
    ("int64 tokens", line(7, completion_tokens=9223372036854775807), "completion_tokens"),
    ("Infinity", line(8).replace('"ttft": 0.25', '"ttft": Infinity'), "not finite"),
    ("NaN", line(9).replace('"duration": 1.5', '"duration": NaN'), "not finite"),
    ("string figure", line(10, ttft="0.2"), "ttft is a string"),
    ("bool token", line(11, prompt_tokens=True), "prompt_tokens"),
    ("40-digit turn", line(12, kind="turn", turn=10**40), "turn"),
    ("deep nesting", line(13).replace('"seq"', '"x": ' + "[" * 2000 + "]" * 2000 + ', "seq"'),
     "nested too deeply"),
]


@pytest.mark.parametrize(("name", "text", "reason"), POISON, ids=[p[0] for p in POISON])
def test_poisonous_line_is_skipped_and_the_rest_of_the_chunk_imported(
    tmp_path: Path, home: Path, name: str, text: str, reason: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(line(1) + "\n" + text + "\n" + line(100) + "\n" + line(101, time=1e300) +
                   "\n" + line(102, completion_tokens=9223372036854775807) + "\n")
    r = run("import", str(src))
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    assert f"{src}:2: skipped: " in r.stderr and reason in r.stderr, r.stderr
    assert "Imported 2 records" in r.output, r.output
    for cmd in (["sessions"], ["report"], ["report", "--format", "json"], ["export", "s_p"]):
        out = run(*cmd)
        assert out.exit_code == 0, (cmd, out.output)
    rep = run("report", "--format", "json")
    for ln in rep.stdout.splitlines():
        json.loads(ln, parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))


def test_gzip_file_is_read_by_its_magic_bytes(tmp_path: Path, home: Path) -> None:
    recs = list(session_records("s_gz", turns=3))
    plain = write_jsonl(tmp_path / "plain.jsonl", recs)
    packed = tmp_path / "records.dat"  # no .gz suffix: the magic bytes decide
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    r = run("import", str(packed))
    assert r.exit_code == 0 and f"Imported {len(recs)} records" in r.output, r.output
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:-30])
    r = run("import", str(broken))
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert r.output.count("\n") == 1 and "cannot read" in r.output, r.output


def test_undecodable_last_line_without_newline_is_reported(tmp_path: Path, home: Path) -> None:
    src = tmp_path / "tail.jsonl"
    src.write_bytes(line(1).encode() + b"\n" + b'{"kind": "\xff\xfe"}')
    r = run("import", str(src))
    assert r.exit_code == 0
    assert f"{src}:2: skipped: not UTF-8 text" in r.stderr
    assert "Imported 1 records, 1 bad lines" in r.output or "1 bad line" in r.output, r.output


def _v1_store(path: Path, texts: list[str], raw: list[bytes] = ()) -> None:  # type: ignore[assignment]
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    for i, text in enumerate([*texts, *raw], 1):
        conn.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?)",
                     ("s_old", i, "llm", 1e300 if i == 2 else 1.0, text))
    conn.execute("INSERT INTO sessions (id, started, ended) VALUES ('s_old', 1.0, 1e300)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_v1_store_with_poisonous_records_is_cleaned_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _v1_store(db, [line(1, session_id="s_old"), line(2, session_id="s_old", time=1e300),
                   line(3, session_id="s_old", metadata="x"),
                   line(4, session_id="s_old", completion_tokens=2**63 - 1),
                   line(5, session_id="s_old", completion_tokens=2**63 - 1)],
              [b'{"kind":"llm","bad":"\xff"}'])
    for cmd in (["sessions"], ["report"], ["report", "--format", "json"], ["export", "s_old"]):
        out = run(*cmd, "--db", str(db))
        assert out.exit_code == 0, (cmd, out.output)
        assert "Traceback" not in out.output
    with Store.open(db) as s:
        assert s.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1


def test_store_it_refuses_is_left_unchanged(tmp_path: Path) -> None:
    """A migration that fails rolls back before the file is switched to WAL."""
    db = tmp_path / "v1.db"
    _v1_store(db, [line(1, session_id="s_old")])
    before = db.read_bytes()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE records_turn (x)")  # m002's index name, taken: the migration fails
    conn.commit()
    conn.close()
    before = db.read_bytes()
    out = run("sessions", "--db", str(db))
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert db.read_bytes() == before  # journal mode and schema untouched


def test_report_totals_never_overflow_on_an_old_store(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Store.open(db) as s:  # as an older lkmetrics stored them: straight into the columns
        s.insert(session_records("s_big", turns=2))
        s.conn.execute("UPDATE records SET completion_tokens = 9223372036854775807 "
                       "WHERE kind = 'llm'")
    out = run("report", "--db", str(db))
    assert out.exit_code == 0, out.output


# -- the property: any JSON object imports and reads back identically, or is skipped --------

_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.text(st.characters(codec=None, exclude_categories=())))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
_known = st.sampled_from(["session_id", "seq", "kind", "time", "schema", "metadata", "ttft",
                          "duration", "decode_rate", "prompt_tokens", "completion_tokens",
                          "total_tokens", "e2e_latency", "usage", "label", "command", "turns",
                          "stages", "heard_latency", "llm", "stt", "tts", "llm_model",
                          "llm_base_url", "cost", "bench_id", "turn"])
_kind = st.sampled_from(["llm", "stt", "tts", "turn", "session", "usage", "summary", "eou", "x"])


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {"schema": 1, "kind": draw(_kind), "session_id": "s_prop",
                           "seq": draw(st.integers(0, 100) | st.integers(0, 2**64)),
                           "time": draw(st.floats(1e9, 2e9) | st.floats(-1e12, 1e300)
                                         | st.integers(-5, 2**70))}
    for key in draw(st.lists(_known, max_size=4)):
        rec[key] = draw(_json)
    for key, value in draw(st.dictionaries(st.text(max_size=4), _json, max_size=3)).items():
        rec[key] = value
    return rec


def _dump(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False)  # NaN and Infinity as JavaScript writes them


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(rec=records())
def test_any_json_object_round_trips_or_is_skipped(tmp_path: Path, rec: dict[str, Any]) -> None:
    db = tmp_path / "prop.db"
    db.unlink(missing_ok=True)
    src = tmp_path / "prop.jsonl"
    base = line(1, session_id="s_base")  # so the store is never empty: every command can run
    try:
        text = _dump(rec)
        src.write_text(base + "\n" + text + "\n", encoding="utf-8")
    except UnicodeEncodeError:  # a lone surrogate: write it as JSON's escape
        text = json.dumps(rec)
        src.write_text(base + "\n" + text + "\n", encoding="utf-8")
    r = run("import", str(src), "--db", str(db))
    assert r.exit_code == 0, r.output
    skipped = ": skipped: " in r.stderr
    assert ("Imported 1 records" if skipped else "Imported 2 records") in r.output, r.output
    assert skipped == (problem(json.loads(text)) is not None)
    for cmd in (["sessions"], ["report"], ["report", "--format", "json"],
                ["report", "--by", "model"], ["export", "s_base"]):
        out = run(*cmd, "--db", str(db))
        assert out.exit_code == 0, (cmd, out.output)
    out = run("export", "s_prop", "--db", str(db))
    if skipped:
        assert out.exit_code != 0 and "Traceback" not in out.output
    else:
        assert out.exit_code == 0, out.output
        assert _same(json.loads(out.stdout), json.loads(text))


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself (none can be stored, but keep the check honest)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
