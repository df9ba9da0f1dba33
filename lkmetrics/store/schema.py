"""The store's schema and its migrations, one named function per version.

``PRAGMA user_version`` holds the version. :data:`MIGRATIONS` runs in order inside one
transaction when a store is opened (see :meth:`lkmetrics.store.db.Database.migrate`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from lkmetrics.figures import FIGURES
from lkmetrics.records import MODEL_KINDS, Record, stage_identity
from lkmetrics.store.rows import COMPONENT_KINDS, Row, SessionModels, session_models, spec
from lkmetrics.store.validate import TIME_MAX, problem

# -- schema -----------------------------------------------------------------------------------

# Version 1: sessions and whole JSON records. Frozen: a database made by it migrates forward.
_V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    started REAL,
    ended REAL,
    command TEXT, stt TEXT, llm TEXT, tts TEXT, voice TEXT, host TEXT,
    lkmetrics_version TEXT, livekit_agents_version TEXT,
    exit_status TEXT
);
CREATE TABLE records (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    time REAL,
    json TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE INDEX records_kind ON records (kind, session_id, seq);
"""


# the figure columns as version 2 made them (frozen: later versions add their own)
_V2_FIGURE_COLUMNS = ("llm_ttft", "llm_duration", "llm_decode_rate", "tts_ttfb", "stt_duration",
                      "eou_delay", "eou_transcription_delay", "e2e")
_V2_TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _v2_sql() -> str:
    """Version 2: the figures reports read, as numeric columns with partial indexes."""
    cols = ["model TEXT", *(f"{c} REAL" for c in _V2_FIGURE_COLUMNS),
            *(f"{c} INTEGER" for c in _V2_TOKEN_COLUMNS)]
    stmts = [f"ALTER TABLE records ADD COLUMN {c};" for c in cols]
    # every index but the unique one is partial: a record touches only those of its kind
    stmts.append("DROP INDEX IF EXISTS records_kind;")
    for c in _V2_FIGURE_COLUMNS:
        stmts.append(f"CREATE INDEX records_{c} ON records ({c}) WHERE {c} IS NOT NULL;")
    stmts.append(
        "CREATE INDEX records_llm ON records "
        "(model, prompt_tokens, completion_tokens, total_tokens) WHERE kind = 'llm';"
    )
    stmts.append("CREATE INDEX records_turn ON records (session_id, e2e) WHERE kind = 'turn';")
    stmts.append("CREATE INDEX records_usage ON records (session_id, seq) WHERE kind = 'usage';")
    stmts.append("CREATE INDEX sessions_started ON sessions (started);")
    return "\n".join(stmts)


def m001_sessions_and_records(conn: sqlite3.Connection) -> None:
    """Version 1: a row per session and a row per record holding its whole JSON."""
    _executescript(conn, _V1)


def m002_figure_columns(conn: sqlite3.Connection) -> None:
    """Version 2: model, figure and token columns with partial indexes (filled by refill)."""
    _executescript(conn, _v2_sql())


_V3_FIGURE_COLUMNS = ("turn_first_sentence", "turn_unexplained", "heard")


def m003_turn_stage_columns(conn: sqlite3.Connection) -> None:
    """Version 3: the turn-stage figures and the caller's heard latency, as indexed columns."""
    for column in _V3_FIGURE_COLUMNS:
        conn.execute(f"ALTER TABLE records ADD COLUMN {column} REAL")
        conn.execute(f"CREATE INDEX records_{column} ON records ({column}) "
                     f"WHERE {column} IS NOT NULL")


def m004_clean_records(conn: sqlite3.Connection) -> None:
    """Drop the records that the validator refuses today (older versions stored them), and
    session times no date holds, so every command can read what is left."""
    cur = conn.execute("SELECT rowid, CAST(json AS BLOB) FROM records")
    doomed: list[tuple[int]] = []
    while True:
        rows = cur.fetchmany(5000)
        if not rows:
            break
        for rowid, blob in rows:
            try:
                record = json.loads(bytes(blob).decode("utf-8"))
            except (ValueError, RecursionError, TypeError):
                record = None
            if problem(record) is not None:
                doomed.append((rowid,))
    conn.executemany("DELETE FROM records WHERE rowid = ?", doomed)
    for column in ("started", "ended"):
        conn.execute(f"UPDATE sessions SET {column} = NULL WHERE {column} IS NOT NULL AND "
                     f"NOT ({column} BETWEEN 0 AND {TIME_MAX})")


def m005_model_identity(conn: sqlite3.Connection) -> None:
    """Version 5: one model identity (refill rewrites ``model`` and the sessions' stage
    columns); each figure's index covers (model, value, session), so every report variant
    reads indexes only, a model's values already sorted."""
    for c in (*_V2_FIGURE_COLUMNS, *_V3_FIGURE_COLUMNS):
        conn.execute(f"DROP INDEX IF EXISTS records_{c}")
        conn.execute(f"CREATE INDEX records_{c} ON records (model, {c}, session_id) "
                     f"WHERE {c} IS NOT NULL")


def m006_turn_cost_and_digests(conn: sqlite3.Connection) -> None:
    """Version 6: per-session digests (:mod:`lkmetrics.store.digest`), which reports read
    instead of the figure indexes (dropped: keeping them cost an import half its time), and
    the ``changes`` counter that tells when a digest is stale; each turn's recorded cost as a
    figure column, covered by the turn index to find turns recorded without one; an index of
    the sessions' opening records."""
    for c in (*_V2_FIGURE_COLUMNS, *_V3_FIGURE_COLUMNS):
        conn.execute(f"DROP INDEX IF EXISTS records_{c}")
    conn.execute("DROP INDEX IF EXISTS records_llm")
    conn.execute("ALTER TABLE records ADD COLUMN cost REAL")
    conn.execute("DROP INDEX IF EXISTS records_turn")
    conn.execute("CREATE INDEX records_turn ON records (session_id, cost, e2e) "
                 "WHERE kind = 'turn'")
    conn.execute("CREATE INDEX records_session ON records (session_id) WHERE kind = 'session'")
    conn.execute("ALTER TABLE sessions ADD COLUMN changes INTEGER NOT NULL DEFAULT 0")
    conn.execute("CREATE TABLE session_digests (session_id TEXT PRIMARY KEY, "
                 "changes INTEGER NOT NULL, data TEXT NOT NULL, packed BLOB NOT NULL)")


def m007_tool_duration(conn: sqlite3.Connection) -> None:
    """Version 7: each function tool call's duration (``tool`` records, --agent) as a figure
    column; its model column holds the tool's name."""
    conn.execute("ALTER TABLE records ADD COLUMN tool_duration REAL")


# the conversation-dynamics columns as version 8 made them (frozen)
_V8_FIGURE_COLUMNS = ("time_to_yield", "talk_over", "backchannels", "false_interruptions",
                      "eot_mispredictions", "livekit_false_interruptions", "stt_wer")


def m008_conversation_dynamics(conn: sqlite3.Connection) -> None:
    """Version 8: the simulated caller's conversation dynamics in turn records (time to
    yield, talk-over, backchannels, false interruptions, premature ends of turn, LiveKit's
    false interruption events, the STT's word error rate) as figure columns."""
    for column in _V8_FIGURE_COLUMNS:
        conn.execute(f"ALTER TABLE records ADD COLUMN {column} REAL")


def _sessions(conn: sqlite3.Connection) -> dict[str, Record]:
    """The opening record of every session, by session id."""
    out: dict[str, Record] = {}
    for sid, text in conn.execute("SELECT session_id, json FROM records WHERE kind = 'session'"):
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict):
            out[str(sid)] = record
    return out


def _local_llm_names(conn: sqlite3.Connection, sessions: dict[str, Record]) -> None:
    """Sessions of the local LLM recorded before ``llm_model`` was: the name its records
    carry in their metadata."""
    for sid, record in sessions.items():
        if record.get("llm") != "local" or record.get("llm_model"):
            continue
        row = conn.execute("SELECT json FROM records WHERE session_id = ? AND kind = 'llm' "
                           "LIMIT 1", (sid,)).fetchone()
        if row is None:
            continue
        try:
            name = (json.loads(row[0]).get("metadata") or {}).get("model_name")
        except (ValueError, AttributeError):
            continue
        if isinstance(name, str) and name:
            record["llm_model"] = name


def refill(conn: sqlite3.Connection) -> None:
    """Fill every indexed column from the stored JSON, with today's extraction.

    Runs once after the migrations of a store that held records, so columns a migration
    added are filled exactly as new records fill them, and the model column and the
    sessions' stage columns hold today's model identities.
    """
    conn.execute("DELETE FROM session_digests")  # built from the columns refilled here
    sessions = _sessions(conn)
    _local_llm_names(conn, sessions)
    known: dict[str, SessionModels] = {sid: session_models(r) for sid, r in sessions.items()}
    for sid, record in sessions.items():
        values = [stage_identity(record, stage) or record.get(stage)
                  for stage in ("llm", "stt", "tts")]
        conn.execute("UPDATE sessions SET llm = ?, stt = ?, tts = ? WHERE id = ?",
                     (*values, sid))
    kinds = sorted({f.kind for f in FIGURES} | COMPONENT_KINDS | MODEL_KINDS)
    marks = ",".join("?" * len(kinds))
    cur = conn.execute(
        f"SELECT rowid, session_id, json FROM records WHERE kind IN ({marks})", kinds)
    while True:
        rows = cur.fetchmany(5000)
        if not rows:
            break
        updates: dict[str, list[Row]] = {}
        for rowid, sid, text in rows:
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                continue
            if problem(record) is None:
                ks = spec(record["kind"])
                if ks.extra:
                    updates.setdefault(ks.update_sql, []).append(
                        (*ks.values(record, known.get(sid)), rowid))
        for sql, params in updates.items():
            conn.executemany(sql, params)
    # records whose session has no row (version 1 did not insist on one) get a row
    conn.execute(
        "INSERT OR IGNORE INTO sessions (id, started, ended) "
        "SELECT session_id, min(time), max(time) FROM records GROUP BY session_id"
    )


def _executescript(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the open transaction; run statement by statement instead
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_sessions_and_records,
    m002_figure_columns,
    m003_turn_stage_columns,
    m004_clean_records,
    m005_model_identity,
    m006_turn_cost_and_digests,
    m007_tool_duration,
    m008_conversation_dynamics,
)
LATEST_VERSION = len(MIGRATIONS)

