"""The embedded SQLite store of every recorded session, its schema migrations and its writer.

One database file (``$LKMETRICS_HOME/metrics.db`` unless ``--db`` says otherwise) holds a
``sessions`` row per session and a ``records`` row per record: the whole JSON record plus the
figures that reports read, extracted on insert into numeric columns with partial indexes, so a
report over a million records never parses JSON. The database runs in WAL mode; writers take
``BEGIN IMMEDIATE`` transactions and wait on a busy timeout, so several processes can record
into one file at once. The store creates and migrates its own schema when opened
(``PRAGMA user_version`` holds the schema version). This module never imports livekit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from lkmetrics.errors import NotFoundError, StoreError, UsageError
from lkmetrics.records import SCHEMA_VERSION, Record, model_label, to_json
from lkmetrics.stats import FIGURES, Figure, figure_value

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

DB_NAME = "metrics.db"

# A record reaches the database at most this long after the writer receives it: a process
# killed with SIGKILL loses at most the records of its last FLUSH_INTERVAL (one batch).
FLUSH_INTERVAL = 0.2
BATCH_MAX = 1000
BUSY_TIMEOUT_MS = 30_000
RETRY_FOR = 300.0  # seconds a recorder keeps retrying a batch while the database is locked

# figure name (stats.FIGURES) -> the numeric column holding it
FIGURE_COLUMNS: dict[str, str] = {
    "llm.ttft": "llm_ttft",
    "llm.duration": "llm_duration",
    "llm.decode_rate": "llm_decode_rate",
    "tts.ttfb": "tts_ttfb",
    "stt.duration": "stt_duration",
    "eou.delay": "eou_delay",
    "eou.transcription_delay": "eou_transcription_delay",
    "e2e": "e2e",
}
_FIGURE_COLUMN_LIST = tuple(dict.fromkeys(FIGURE_COLUMNS.values()))
TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens")
COMPONENT_KINDS = frozenset({"llm", "stt", "tts", "realtime"})

SESSION_FIELDS = (
    "command", "stt", "llm", "tts", "voice", "host", "lkmetrics_version",
    "livekit_agents_version",
)

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


def _v2_sql() -> str:
    """Version 2: the figures reports read, as numeric columns with partial indexes."""
    cols = ["model TEXT", *(f"{c} REAL" for c in _FIGURE_COLUMN_LIST),
            *(f"{c} INTEGER" for c in TOKEN_COLUMNS)]
    stmts = [f"ALTER TABLE records ADD COLUMN {c};" for c in cols]
    # every index but the unique one is partial: a record touches only those of its kind
    stmts.append("DROP INDEX IF EXISTS records_kind;")
    for c in _FIGURE_COLUMN_LIST:
        stmts.append(f"CREATE INDEX records_{c} ON records ({c}) WHERE {c} IS NOT NULL;")
    stmts.append(
        "CREATE INDEX records_llm ON records "
        "(model, prompt_tokens, completion_tokens, total_tokens) WHERE kind = 'llm';"
    )
    stmts.append("CREATE INDEX records_turn ON records (session_id, e2e) WHERE kind = 'turn';")
    stmts.append("CREATE INDEX records_usage ON records (session_id, seq) WHERE kind = 'usage';")
    stmts.append("CREATE INDEX sessions_started ON sessions (started);")
    return "\n".join(stmts)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    _executescript(conn, _V1)


def _migrate_v2(conn: sqlite3.Connection) -> None:
    _executescript(conn, _v2_sql())
    # backfill the new columns from the stored JSON, in batches
    kinds = sorted({f.kind for f in FIGURES} | COMPONENT_KINDS)
    marks = ",".join("?" * len(kinds))
    cur = conn.execute(f"SELECT rowid, json FROM records WHERE kind IN ({marks})", kinds)
    while True:
        rows = cur.fetchmany(5000)
        if not rows:
            break
        updates: dict[str, list[Row]] = {}
        for rowid, text in rows:
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("kind"), str):
                spec = _spec(record["kind"])
                if spec.extra:
                    updates.setdefault(spec.update_sql, []).append(
                        (*spec.values(record), rowid)
                    )
        for sql, params in updates.items():
            conn.executemany(sql, params)
    # records whose session has no row (v1 did not insist on one) get a row
    conn.execute(
        "INSERT OR IGNORE INTO sessions (id, started, ended) "
        "SELECT session_id, min(time), max(time) FROM records GROUP BY session_id"
    )


def _executescript(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the open transaction; run statement by statement instead
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_v1, _migrate_v2)
LATEST_VERSION = len(MIGRATIONS)


# -- record -> row ----------------------------------------------------------------------------

Row = tuple[Any, ...]
_BASE_COLUMNS = ("session_id", "seq", "kind", "time", "json")


INT64_MAX = 2**63 - 1  # SQLite's INTEGER range


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    n = int(value)
    return n if -INT64_MAX <= n <= INT64_MAX else None


class _KindSpec:
    """The indexed columns of one record kind, and the statements that fill them.

    Each kind inserts only its own columns: binding a dozen NULLs per row would cost more
    than the insert itself at import speed.
    """

    def __init__(self, kind: str) -> None:
        self.figures = [f for f in FIGURES if f.kind == kind and f.name in FIGURE_COLUMNS]
        self.component = kind in COMPONENT_KINDS
        self.llm = kind == "llm"
        self.fields = tuple((f.field, f) for f in self.figures)
        self.extra: tuple[str, ...] = (
            *(("model",) if self.component else ()),
            *(FIGURE_COLUMNS[f.name] for f in self.figures),
            *(TOKEN_COLUMNS if self.llm else ()),
        )
        columns = (*_BASE_COLUMNS, *self.extra)
        self.insert_sql = (
            f"INSERT OR IGNORE INTO records ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        self.update_sql = (
            f"UPDATE records SET {', '.join(f'{c} = ?' for c in self.extra)} WHERE rowid = ?"
        )

    def values(self, record: Record) -> tuple[Any, ...]:
        """The extra column values of ``record``, in the order of ``self.extra``.

        A figure column holds :func:`lkmetrics.stats.figure_value` of the record, so reports
        read exactly what a session summary computes. The common cases (a positive float
        figure, an int token count) are taken without a call: at import speed each call
        costs more than the insert of the row.
        """
        get = record.get
        out: list[Any] = []
        if self.component:
            label = get("label")
            out.append(model_label(record) or (str(label) if label else record["kind"]))
        for name, figure in self.fields:
            v = get(name)
            out.append(v if type(v) is float and v > 0.0 else figure_value(figure, record))
        if self.llm:
            for name in TOKEN_COLUMNS:
                v = get(name)
                out.append(v if type(v) is int and -INT64_MAX <= v <= INT64_MAX
                           else _int_or_none(v))
        return tuple(out)


_SPECS: dict[str, _KindSpec] = {}


def _spec(kind: str) -> _KindSpec:
    spec = _SPECS.get(kind)
    if spec is None:
        spec = _SPECS[kind] = _KindSpec(kind)
    return spec


def extract(record: Record) -> dict[str, Any]:
    """The indexed columns (model, figure columns, tokens) that a record fills."""
    spec = _spec(str(record.get("kind")))
    return dict(zip(spec.extra, spec.values(record), strict=True))


def row_of(record: Record, text: str | None = None) -> tuple[str, Row]:
    """The insert statement and row of a checked record; ``text``: its JSON, if at hand."""
    spec = _spec(record["kind"])
    return spec.insert_sql, (
        record["session_id"], record["seq"], record["kind"], record["time"],
        text if text is not None else to_json(record), *spec.values(record),
    )


def check_record(record: Any) -> str | None:
    """Why ``record`` cannot be stored (a short reason), or None when it can."""
    if not isinstance(record, dict):
        return "not a JSON object"
    sid = record.get("session_id")
    if not isinstance(sid, str) or not sid:
        return "no session_id"
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= INT64_MAX:
        return "no integer seq"
    kind = record.get("kind")
    if not isinstance(kind, str) or not kind:
        return "no kind"
    t = record.get("time")
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        return "no numeric time"
    schema = record.get("schema", SCHEMA_VERSION)
    if isinstance(schema, int) and schema > SCHEMA_VERSION:
        return f"record schema {schema} is newer than this lkmetrics reads ({SCHEMA_VERSION})"
    return None


class _SessionTracker:
    """Session rows to upsert with a batch: first/last record time, and the ``session`` record."""

    def __init__(self) -> None:
        self.span: dict[str, list[float]] = {}
        self.info: dict[str, Record] = {}

    def add(self, record: Record) -> None:
        sid = record["session_id"]
        t = float(record["time"])
        span = self.span.get(sid)
        if span is None:
            self.span[sid] = [t, t]
        else:
            if t < span[0]:
                span[0] = t
            if t > span[1]:
                span[1] = t
        if record["kind"] == "session":
            self.info[sid] = record

    def clear(self) -> None:
        self.span.clear()
        self.info.clear()


class _Batch:
    """Rows for one transaction, grouped by insert statement, with their sessions."""

    def __init__(self) -> None:
        self.groups: dict[str, list[Row]] = {}
        self.sessions = _SessionTracker()
        self.size = 0

    def add(self, record: Record, text: str | None = None) -> None:
        sql, row = row_of(record, text)
        group = self.groups.get(sql)
        if group is None:
            group = self.groups[sql] = []
        group.append(row)
        self.sessions.add(record)
        self.size += 1


# -- import: chunks of lines parsed here or in worker processes ---------------------------------

CHUNK_BYTES = 4_000_000
PARALLEL_MIN_BYTES = 16_000_000
IMPORT_TX_SECONDS = 1.0
IMPORT_CACHE_KIB = 32_768
IMPORT_CHECKPOINT_PAGES = 10_000

# (rows, bad lines as (line number, reason), number of lines)
_Parsed = tuple[_Batch, list[tuple[int, str]], int]


def _read_chunks(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes of whole lines) of about CHUNK_BYTES each."""
    first = 1
    while True:
        data = f.read(CHUNK_BYTES)
        if not data:
            return
        if not data.endswith(b"\n"):
            data += f.readline()  # finish the last line (or this is the end of the file)
        yield first, data
        first += data.count(b"\n") + (not data.endswith(b"\n"))


# what bytes.strip() strips: a line is stripped of ASCII whitespace only, decoded or not
_WHITESPACE = " \t\n\r\x0b\x0c"


def _json_loads() -> Callable[[str], Any]:
    """The fastest JSON parser at hand that accepts exactly what :func:`json.loads` accepts.

    orjson when it is installed (an optional speed-up), else the standard library's scanner
    without the ``json.loads`` wrappers. Whatever the fast parser rejects goes to
    ``json.loads``, which then accepts it or raises the error reported for the line.
    """
    import importlib

    loads = json.loads
    try:
        orjson: Any = importlib.import_module("orjson")
    except ImportError:
        scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

        def stdlib_loads(text: str) -> Any:
            try:
                value, end = scan(text, 0)
            except (StopIteration, ValueError):
                return loads(text)
            return value if end == len(text) else loads(text)

        return stdlib_loads
    fast, fast_error = orjson.loads, orjson.JSONDecodeError

    def orjson_loads(text: str) -> Any:
        try:
            return fast(text)
        except fast_error:  # e.g. NaN, a lone surrogate, a 100-digit integer
            return loads(text)

    return orjson_loads


_LOADS: Callable[[str], Any] | None = None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: an import makes millions of acyclic objects, and
    collections triggered by their allocation would only cost time."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _utf8_lines(data: bytes) -> list[str] | list[str | None]:
    """The lines of a chunk, decoded; None for a line that is not UTF-8."""
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        pass
    out: list[str | None] = []
    for raw in data.split(b"\n"):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def _parse_chunk(data: bytes, first: int) -> _Parsed:
    """Parse and check the lines of a chunk into a batch; collect the bad ones.

    The hot loop of an import, written out by hand: the envelope check of a well-formed
    record and the row are built without calls (check_record decides every other case),
    rows are grouped by insert statement and session spans tracked as they come.
    """
    global _LOADS
    loads = _LOADS = _LOADS or _json_loads()
    batch = _Batch()
    bad: list[tuple[int, str]] = []
    lines = _utf8_lines(data)
    if lines and not lines[-1]:
        lines.pop()
    # kind -> (its spec, the row list of its insert statement)
    kinds: dict[str, tuple[_KindSpec, list[Row]]] = {}
    spans = batch.sessions.span
    infos = batch.sessions.info
    whitespace = _WHITESPACE
    newest = SCHEMA_VERSION
    size = 0
    sid: Any
    seq: Any
    kind: Any
    t: Any
    with _gc_paused():
        for lineno, line in enumerate(lines, first):
            if line is None:
                bad.append((lineno, "not UTF-8 text"))
                continue
            text = line.strip(whitespace)
            if not text:
                continue
            try:
                record = loads(text)
            except ValueError as e:
                bad.append((lineno, f"not JSON ({e})"))
                continue
            if type(record) is dict:
                sid = record.get("session_id")
                seq = record.get("seq")
                kind = record.get("kind")
                t = record.get("time")
                schema = record.get("schema")
                ok = (type(sid) is str and sid != "" and type(seq) is int and 0 <= seq <= INT64_MAX
                      and type(kind) is str and kind != "" and type(t) is float
                      and t - t == 0.0  # finite
                      and (schema is None or (type(schema) is int and schema <= newest)))
            else:
                ok = False
            if not ok:
                reason = check_record(record)
                if reason is not None:
                    bad.append((lineno, reason))
                    continue
                sid, seq, kind, t = (record["session_id"], record["seq"], record["kind"],
                                     record["time"])
            entry = kinds.get(kind)
            if entry is None:
                spec = _spec(kind)
                group = batch.groups.get(spec.insert_sql)
                if group is None:
                    group = batch.groups[spec.insert_sql] = []
                entry = kinds[kind] = (spec, group)
            spec, group = entry
            if spec.extra:
                group.append((sid, seq, kind, t, text, *spec.values(record)))
            else:
                group.append((sid, seq, kind, t, text))
            size += 1
            span = spans.get(sid)
            if span is None:
                tf = float(t)
                spans[sid] = [tf, tf]
            elif t < span[0]:
                span[0] = float(t)
            elif t > span[1]:
                span[1] = float(t)
            if kind == "session":
                infos[sid] = record
    batch.size = size
    return batch, bad, len(lines)


def _parse_stream(f: BinaryIO, progress: Progress) -> Iterator[_Parsed]:
    """Parse a stream chunk by chunk in this process."""
    for first, data in _read_chunks(f):
        yield _parse_chunk(data, first)
        progress(len(data))  # the consumer has written the chunk


def _dumps(parsed: _Parsed) -> bytes:
    """Pickle a parsed chunk without the memo: its objects are acyclic and not shared."""
    import io
    import pickle

    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo: faster to write, and to read back
    pickler.dump(parsed)
    return buf.getvalue()


def _line_start(f: BinaryIO, offset: int) -> int:
    """The offset of the first line that starts at or after ``offset``."""
    if offset <= 0:
        return 0
    f.seek(offset - 1)
    if f.read(1) != b"\n":
        f.readline()  # the line under way belongs to the chunk before
    return f.tell()


def _parse_worker(
    path: str, index: int, step: int, chunks: int, chunk_bytes: int, out: Connection,
    readers: list[Connection],
) -> None:
    """Parse chunks ``index``, ``index + step``, ... of a file and send them, in order.

    Chunk ``j`` holds the lines that start within bytes ``[j, j + 1) * chunk_bytes``; the
    last one runs to the end of the file. A worker reads the file itself, so the parent
    only receives parsed rows; line numbers are relative to the chunk.
    """
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    for reader in readers:
        # the parent's ends of the pipes, inherited by a fork: closed, so that a send fails
        # (and this worker exits) when the parent is gone, instead of blocking for ever
        reader.close()
    try:
        with open(path, "rb") as f:
            for j in range(index, chunks, step):
                start = _line_start(f, j * chunk_bytes)
                end = _line_start(f, (j + 1) * chunk_bytes) if j + 1 < chunks else -1
                f.seek(start)
                data = f.read(end - start) if end >= 0 else f.read()
                out.send_bytes(_dumps(_parse_chunk(data, 1)))
    except BaseException as e:  # the parent raises it
        try:
            payload = pickle.dumps(e)
        except Exception:
            payload = pickle.dumps(StoreError(f"{type(e).__name__}: {e}"))
        with contextlib.suppress(OSError):  # the parent is gone
            out.send_bytes(payload)
    finally:
        out.close()


def _parallel_parse(path: Path, workers: int, progress: Progress) -> Iterator[_Parsed]:
    """Parse a file in ``workers`` processes, each reading its own chunks; yield in order.

    A worker blocks on its pipe until this process takes its next chunk, so at most a
    chunk or two per worker are in flight: memory stays constant whatever the file size.
    """
    import multiprocessing
    import pickle

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx: Any = multiprocessing.get_context(method)
    chunk_bytes = CHUNK_BYTES
    size = path.stat().st_size
    chunks = max(1, -(-size // chunk_bytes))
    workers = max(1, min(workers, chunks))
    conns: list[Connection] = []
    procs: list[Any] = []
    try:
        for i in range(workers):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_parse_worker,
                args=(str(path), i, workers, chunks, chunk_bytes, send, [*conns, recv]),
                name=f"lkmetrics-import-{i}", daemon=True,
            )
            proc.start()
            send.close()
            conns.append(recv)
            procs.append(proc)
        first = 1
        for j in range(chunks):
            try:
                item = pickle.loads(conns[j % workers].recv_bytes())
            except EOFError:
                raise StoreError(
                    f"an import worker stopped unexpectedly while reading {path}; "
                    "run the same import again (nothing is duplicated)."
                ) from None
            if isinstance(item, BaseException):
                raise item
            batch, bad, lines = item
            yield batch, [(first - 1 + n, why) for n, why in bad], lines
            first += lines
            # the consumer has written the chunk; its size here is the byte range it was
            # cut from, which is the real one to within a line
            progress(min(size, (j + 1) * chunk_bytes) - j * chunk_bytes)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join()
        for conn in conns:
            conn.close()


# -- the store ---------------------------------------------------------------------------------


def default_db_path() -> Path:
    """``$LKMETRICS_HOME/metrics.db``, else ``metrics.db`` in typer's per-user app dir."""
    from lkmetrics.config import app_dir

    return app_dir() / DB_NAME


@dataclass(frozen=True)
class SessionRow:
    id: str
    started: float | None
    ended: float | None
    command: str | None
    stt: str | None
    llm: str | None
    tts: str | None
    voice: str | None
    host: str | None
    lkmetrics_version: str | None
    livekit_agents_version: str | None
    exit_status: str | None

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


_SESSION_COLUMNS = (
    "id, started, ended, command, stt, llm, tts, voice, host, lkmetrics_version, "
    "livekit_agents_version, exit_status"
)


@dataclass(frozen=True)
class Scope:
    """Which records a query reads: some sessions (None: all) and a start time."""

    session_ids: tuple[str, ...] | None = None
    since: float | None = None

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        prefix = f"{alias}." if alias else ""
        clauses: list[str] = []
        params: list[Any] = []
        if self.session_ids is not None:
            clauses.append(
                f"{prefix}session_id IN ({','.join('?' * len(self.session_ids))})"
            )
            params.extend(self.session_ids)
        if self.since is not None:
            clauses.append(f"{prefix}time >= ?")
            params.append(self.since)
        return "".join(f" AND {c}" for c in clauses), params


@dataclass
class ImportResult:
    files: int = 0
    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    bad: int = 0


BadLine = Callable[[str, int, str], None]
Progress = Callable[[int], None]  # called with the bytes of input just imported


class Interrupted(StoreError):
    """Ctrl-C during an import or export; what an import committed stays (exit code 130)."""

    exit_code = 130


def check_import_paths(paths: Sequence[Path]) -> None:
    """Raise UsageError unless every path is a file or ``-`` (stdin)."""
    for p in paths:
        if str(p) != "-" and not p.is_file():
            raise UsageError(f"{p} is not a file; pass the JSON lines written by --output.")


def _is_busy(e: BaseException) -> bool:
    msg = str(e)
    return "locked" in msg or "busy" in msg


def _describe_error(path: Path, e: BaseException) -> str:
    msg = str(e)
    if "file is not a database" in msg or "not a database" in msg:
        return (
            f"{path} is not an lkmetrics database (not SQLite); pass --db with another file, "
            "or move this one away."
        )
    if "malformed" in msg or "corrupt" in msg:
        return (
            f"{path} is corrupt ({msg}); move it away (lkmetrics starts a new store) or "
            "pass --db with another file."
        )
    if "readonly" in msg or "read-only" in msg:
        return f"{path} is read-only ({msg}); make it writable or pass --db with another file."
    if _is_busy(e):
        return f"{path} is locked by another process for too long ({msg}); try again."
    if "unable to open" in msg:
        return (
            f"cannot open {path} ({msg}); check that its folder exists and is writable, "
            "or pass --db with another file."
        )
    return f"cannot use the metrics database {path} ({msg})."


class Store:
    """One open metrics database. Create with :meth:`open`; use from one thread at a time."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    # -- opening --

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        """Open (and create or migrate) the store at ``path``.

        ``create=False`` (the reporting commands) raises NotFoundError when there is no file.
        Nothing is written to a file that is not an lkmetrics database.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            raise StoreError(
                f"--db {path} is a directory; pass a file path, e.g. {path / DB_NAME}."
            )
        if not path.exists():
            if not create:
                raise NotFoundError(
                    f"no metrics database at {path} yet; run an agent command (recording is "
                    "on by default) or `lkmetrics import FILE` first."
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(
                    f"cannot create the folder of --db {path} ({e.strerror or e}); "
                    "pass --db with a writable path."
                ) from None
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as e:
            raise StoreError(_describe_error(path, e)) from None
        store = cls(conn, path)
        try:
            store._prepare()
        except BaseException:
            conn.close()
            raise
        return store

    def _prepare(self) -> None:
        with self.errors():
            conn = self.conn
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # a read first: fails on a file that is not SQLite, before anything is written
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > LATEST_VERSION:
                raise StoreError(
                    f"{self.path} has store schema {version}, newer than this lkmetrics "
                    f"knows ({LATEST_VERSION}); upgrade lkmetrics or pass --db with another file."
                )
            if version == 0 and tables:
                raise StoreError(
                    f"{self.path} is an SQLite database but not an lkmetrics store; pass --db "
                    "with another file."
                )
            self._use_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
            if version < LATEST_VERSION:
                self.migrate()

    def _use_wal(self) -> None:
        """Switch the file to WAL mode, waiting out other processes doing the same.

        Changing the journal mode needs an exclusive lock, and SQLite reports SQLITE_BUSY for it
        at once, without calling the busy handler, when several processes open a new file
        together. So this retries (with backoff) for up to the busy timeout.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal":
                    return
                self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if not _is_busy(e) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def migrate(self) -> int:
        """Bring the schema to the latest version; returns the version it was at."""
        with self.errors(), self.transaction():
            version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
            for index in range(version, LATEST_VERSION):
                MIGRATIONS[index](self.conn)
            self.conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        return version

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn sqlite3 errors into one-line StoreErrors."""
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(_describe_error(self.path, e)) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction, taken up front (BEGIN IMMEDIATE) so the busy timeout applies."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        with self.errors():
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    # -- writing --

    def write_batch(self, batch: _Batch, *, status: str | None = None) -> int:
        """Insert a batch (duplicates ignored) and upsert its sessions in one transaction.

        ``status`` is the exit status given to sessions created here ("running" for a live
        recording, None for an import). Returns the number of records inserted.
        """
        with self.transaction():
            return self._insert_batch(batch, status)

    def _insert_batch(self, batch: _Batch, status: str | None) -> int:
        conn = self.conn
        before = conn.total_changes
        for sql, rows in batch.groups.items():
            conn.executemany(sql, rows)
        inserted = conn.total_changes - before
        self._upsert_sessions(batch.sessions, status)
        return inserted

    def _upsert_sessions(self, sessions: _SessionTracker, status: str | None) -> None:
        conn = self.conn
        conn.executemany(
            "INSERT INTO sessions (id, started, ended, exit_status) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET "
            "started = min(coalesce(started, excluded.started), excluded.started), "
            "ended = max(coalesce(ended, excluded.ended), excluded.ended)",
            [(sid, span[0], span[1], status) for sid, span in sessions.span.items()],
        )
        if sessions.info:
            sets = ", ".join(f"{f} = ?" for f in SESSION_FIELDS)
            conn.executemany(
                f"UPDATE sessions SET {sets}, started = ? WHERE id = ?",
                [
                    (*(_text(rec.get(f)) for f in SESSION_FIELDS), rec["time"], sid)
                    for sid, rec in sessions.info.items()
                ],
            )

    def set_exit_status(self, session_ids: Iterable[str], status: str) -> None:
        with self.errors(), self.transaction():
            self.conn.executemany(
                "UPDATE sessions SET exit_status = ? WHERE id = ?",
                [(status, sid) for sid in session_ids],
            )

    def insert(self, records: Iterable[Record], *, status: str | None = None) -> int:
        """Insert checked records in one transaction (tests and tools)."""
        batch = _Batch()
        for record in records:
            batch.add(record)
        with self.errors():
            return self.write_batch(batch, status=status)

    def import_files(
        self, paths: Sequence[Path], on_bad: BadLine, *, workers: int | None = None,
        progress: Progress | None = None,
    ) -> ImportResult:
        """Import JSON lines files (``-``: standard input), as ``--output`` writes them.

        Bad lines go to ``on_bad(file, line_number, reason)`` and are skipped. Each chunk of
        lines commits on its own, so an interrupted import keeps what it committed, and
        importing the same lines again inserts nothing twice. Large files are parsed by
        ``workers`` processes (default: one per spare CPU, at most 4), each reading its own
        chunks of the file, while this one writes. ``progress(n)`` is called after each chunk
        is written, with the number of input bytes it held.
        """
        import sys

        check_import_paths(paths)
        result = ImportResult()
        advance: Progress = progress or (lambda n: None)
        if workers is None:
            workers = min(4, (os.cpu_count() or 1) - 1)
        for p in paths:
            result.files += 1
            name = "<stdin>" if str(p) == "-" else str(p)
            try:
                if str(p) == "-":
                    parsed = _parse_stream(sys.stdin.buffer, advance)
                    self._import_parsed(parsed, name, result, on_bad)
                elif workers > 0 and p.stat().st_size >= PARALLEL_MIN_BYTES:
                    parsed = _parallel_parse(p, workers, advance)
                    self._import_parsed(parsed, name, result, on_bad)
                else:
                    with open(p, "rb") as f:
                        self._import_parsed(_parse_stream(f, advance), name, result, on_bad)
            except OSError as e:
                raise StoreError(f"cannot read {p} ({e.strerror or e}).") from None
        return result

    def _import_parsed(
        self, parsed: Iterator[_Parsed], name: str, result: ImportResult, on_bad: BadLine
    ) -> None:
        # a bulk writer: a bigger page cache and fewer, larger checkpoints
        self.conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {IMPORT_CHECKPOINT_PAGES}")
        conn = self.conn
        in_tx = False
        tx_start = 0.0
        tx_inserted = tx_size = 0

        def commit() -> None:
            nonlocal in_tx, tx_inserted, tx_size
            conn.execute("COMMIT")
            in_tx = False
            result.imported += tx_inserted
            result.duplicates += tx_size - tx_inserted
            tx_inserted = tx_size = 0

        try:
            with self.errors(), _gc_paused():
                try:
                    for batch, bad, lines in parsed:
                        for lineno, reason in bad:
                            on_bad(name, lineno, reason)
                        result.bad += len(bad)
                        result.lines += lines
                        if not batch.size:
                            continue
                        if not in_tx:
                            conn.execute("BEGIN IMMEDIATE")
                            in_tx, tx_start = True, time.monotonic()
                        tx_inserted += self._insert_batch(batch, None)
                        tx_size += batch.size
                        # several chunks per transaction (each commit rewrites the index
                        # pages it touched: 0.5 s -> 1 s made the import 5% faster), but short
                        # ones: other processes may be recording into this file
                        if time.monotonic() - tx_start >= IMPORT_TX_SECONDS:
                            commit()
                    if in_tx:
                        commit()
                finally:
                    if in_tx:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted while importing {name}: {result.imported:,} records were "
                "imported; run the same import again to finish (nothing is duplicated)."
            ) from None
        finally:
            close = getattr(parsed, "close", None)
            if close is not None:
                close()

    # -- reading --

    def count_records(self) -> int:
        with self.errors():
            return int(self.conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def has_sessions(self) -> bool:
        with self.errors():
            return self.conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is not None

    def require_sessions(self) -> None:
        if not self.has_sessions():
            raise NotFoundError(
                f"the store {self.path} holds no sessions yet; run an agent command "
                "(recording is on by default) or `lkmetrics import FILE` first."
            )

    def sessions(self, limit: int | None = None) -> list[SessionRow]:
        """Sessions, newest first."""
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY started DESC, id DESC"
        params: list[Any] = []
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        with self.errors():
            return [SessionRow(*r) for r in self.conn.execute(sql, params)]

    def session(self, session_id: str) -> SessionRow:
        with self.errors():
            r = self.conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        if r is None:
            raise NotFoundError(f"no session {session_id!r} in {self.path}.")
        return SessionRow(*r)

    def resolve_session(self, ref: str) -> str:
        """A session id from ``last``, a full id or a unique prefix of one."""
        self.require_sessions()
        with self.errors():
            if ref == "last":
                r = self.conn.execute(
                    "SELECT id FROM sessions ORDER BY started DESC, id DESC LIMIT 1"
                ).fetchone()
                return str(r[0])
            if self.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (ref,)).fetchone():
                return ref
            found = [
                str(r[0]) for r in self.conn.execute(
                    "SELECT id FROM sessions WHERE substr(id, 1, ?) = ? LIMIT 2",
                    (len(ref), ref),
                )
            ]
        if len(found) == 1:
            return found[0]
        if found:
            raise NotFoundError(
                f"session {ref!r} is ambiguous in {self.path}; give more of the id "
                "(`lkmetrics sessions` lists them)."
            )
        raise NotFoundError(
            f"no session {ref!r} in {self.path}; `lkmetrics sessions` lists the recorded ones."
        )

    def session_turns(self, session_ids: Sequence[str]) -> dict[str, tuple[int, list[float]]]:
        """Per session: the number of turns and their sorted e2e latencies."""
        out: dict[str, tuple[int, list[float]]] = {}
        if not session_ids:
            return out
        counts: dict[str, int] = {}
        values: dict[str, list[float]] = {}
        with self.errors():
            for chunk in _chunks(session_ids, 500):
                marks = ",".join("?" * len(chunk))
                for sid, v in self.conn.execute(
                    f"SELECT session_id, e2e FROM records WHERE kind = 'turn' "
                    f"AND session_id IN ({marks})", chunk,
                ):
                    counts[sid] = counts.get(sid, 0) + 1
                    if v is not None:
                        values.setdefault(sid, []).append(float(v))
        for sid in session_ids:
            out[sid] = (counts.get(sid, 0), sorted(values.get(sid, [])))
        return out

    def figure_values(
        self, figure: Figure, scope: Scope, by: str | None = None
    ) -> dict[str, list[float]]:
        """The figure's values in scope, sorted, grouped by None, "session", "model" or "kind"."""
        col = FIGURE_COLUMNS.get(figure.name)
        if col is None:
            return self._figure_values_from_json(figure, scope, by)
        where, params = scope.where("r")
        if by == "model":
            sql = (f"SELECT r.model, r.session_id, r.{col} FROM records r "
                   f"WHERE r.{col} IS NOT NULL{where}")
            # records without their own model (turn, eou) count for the session's model
            column = {"stt": 1, "tts": 2}.get(figure.kind, 0)
            with self.errors():
                own = {str(sid): models[column] for sid, *models in self.conn.execute(
                    "SELECT id, llm, stt, tts FROM sessions")}
                groups: dict[str, list[float]] = {}
                for model, sid, v in self.conn.execute(sql, params):
                    key = model or own.get(sid) or "unknown"
                    bucket = groups.get(key)
                    if bucket is None:
                        bucket = groups[key] = []
                    bucket.append(v)
            for values in groups.values():
                values.sort()
            return groups
        elif by == "session":
            sql = f"SELECT r.session_id, r.{col} FROM records r WHERE r.{col} IS NOT NULL{where}"
        else:
            sql = f"SELECT r.{col} FROM records r WHERE r.{col} IS NOT NULL{where}"
        with self.errors():
            cur = self.conn.execute(sql, params)
            if by == "session":
                by_session: dict[str, list[float]] = {}
                for key_value, v in cur:
                    by_session.setdefault(str(key_value), []).append(v)
                for values in by_session.values():
                    values.sort()
                return by_session
            values = [r[0] for r in cur]
        values.sort()
        group = figure.kind if by == "kind" else "all"
        return {group: values} if values else {}

    def _figure_values_from_json(
        self, figure: Figure, scope: Scope, by: str | None
    ) -> dict[str, list[float]]:
        # a figure added to stats.FIGURES after this schema: read it from the JSON
        where, params = scope.where()
        groups: dict[str, list[float]] = {}
        with self.errors():
            cur = self.conn.execute(
                f"SELECT session_id, model, json FROM records WHERE kind = ?{where}",
                [figure.kind, *params],
            )
            for sid, model, text in cur:
                v = figure_value(figure, json.loads(text))
                if v is None:
                    continue
                key = {"session": sid, "model": model or "unknown", "kind": figure.kind}.get(
                    by or "", "all"
                )
                groups.setdefault(key, []).append(v)
        for values in groups.values():
            values.sort()
        return groups

    def token_totals(self, scope: Scope) -> list[tuple[str, int, int, int, int]]:
        """Per LLM model: requests, prompt, completion and total tokens."""
        where, params = scope.where()
        with self.errors():
            rows = self.conn.execute(
                "SELECT coalesce(model, 'unknown'), count(*), coalesce(sum(prompt_tokens), 0), "
                "coalesce(sum(completion_tokens), 0), coalesce(sum(total_tokens), 0) "
                f"FROM records WHERE kind = 'llm'{where} GROUP BY 1 ORDER BY 1",
                params,
            ).fetchall()
        return [(str(m), int(n), int(p), int(c), int(t)) for m, n, p, c, t in rows]

    def last_usage(self, scope: Scope) -> Iterator[list[dict[str, Any]]]:
        """The ``usage`` list of each session's last usage record in scope (cumulative)."""
        where, params = scope.where()
        with self.errors():
            last = self.conn.execute(
                f"SELECT session_id, max(seq) FROM records WHERE kind = 'usage'{where} "
                "GROUP BY session_id",
                params,
            ).fetchall()
            for sid, seq in last:
                r = self.conn.execute(
                    "SELECT json FROM records WHERE session_id = ? AND seq = ?", (sid, seq)
                ).fetchone()
                if r is None:
                    continue
                with contextlib.suppress(ValueError):
                    usage = json.loads(r[0]).get("usage")
                    if isinstance(usage, list):
                        yield [u for u in usage if isinstance(u, dict)]

    def kind_counts(self, scope: Scope) -> dict[str, int]:
        where, params = scope.where()
        with self.errors():
            return {
                str(k): int(n) for k, n in self.conn.execute(
                    f"SELECT kind, count(*) FROM records WHERE 1 = 1{where} "
                    "GROUP BY kind ORDER BY kind", params,
                )
            }

    def models(self) -> list[str]:
        """Every model label the store knows (record models and sessions' models)."""
        with self.errors():
            found = {
                str(r[0]) for r in self.conn.execute(
                    "SELECT DISTINCT model FROM records WHERE model IS NOT NULL "
                    "UNION SELECT llm FROM sessions UNION SELECT stt FROM sessions "
                    "UNION SELECT tts FROM sessions"
                ) if r[0] is not None
            }
        return sorted(found)

    def export_jsonl(self, session_ids: Sequence[str], out: TextIO) -> int:
        """Write the records of the sessions, in order, as JSON lines; constant memory."""
        n = 0
        with self.errors():
            for sid in session_ids:
                cur = self.conn.execute(
                    "SELECT json FROM records WHERE session_id = ? ORDER BY seq", (sid,)
                )
                while True:
                    rows = cur.fetchmany(2000)
                    if not rows:
                        break
                    out.write("".join(r[0] + "\n" for r in rows))
                    n += len(rows)
        return n

    EXPORT_CSV_COLUMNS = (
        "session_id", "seq", "kind", "time", "model", *_FIGURE_COLUMN_LIST, *TOKEN_COLUMNS,
        "json",
    )

    def export_csv(self, session_ids: Sequence[str], out: TextIO) -> int:
        """Write the records as CSV: envelope, indexed figures, tokens and the whole JSON."""
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.EXPORT_CSV_COLUMNS)
        cols = ", ".join(self.EXPORT_CSV_COLUMNS)
        n = 0
        with self.errors():
            for sid in session_ids:
                cur = self.conn.execute(
                    f"SELECT {cols} FROM records WHERE session_id = ? ORDER BY seq", (sid,)
                )
                while True:
                    rows = cur.fetchmany(2000)
                    if not rows:
                        break
                    writer.writerows(rows)
                    n += len(rows)
        return n

    def session_ids_oldest_first(self) -> list[str]:
        with self.errors():
            return [
                str(r[0]) for r in self.conn.execute(
                    "SELECT id FROM sessions ORDER BY started, id"
                )
            ]


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


# -- the recording writer -------------------------------------------------------------------

_STOP = object()


class StoreWriter:
    """A :class:`lkmetrics.sink.Writer` that records into the store from its own thread.

    ``write`` only appends to a queue. The writer thread commits a batch at most
    ``FLUSH_INTERVAL`` (200 ms) after its first record arrived, or sooner when ``BATCH_MAX``
    records are waiting, so a process killed with SIGKILL loses at most its last 200 ms of
    records; the database itself stays consistent (WAL, one transaction per batch). Set
    ``exit_status`` before :meth:`close`; it goes into the session rows this writer made.
    """

    def __init__(self, path: Path, *, flush_interval: float = FLUSH_INTERVAL,
                 batch_max: int = BATCH_MAX) -> None:
        self.path = Path(path)
        self.exit_status = "ok"
        self.errors: list[str] = []
        self.written = 0
        self._interval = flush_interval
        self._batch_max = batch_max
        self._sessions: set[str] = set()
        self._store = Store.open(self.path)  # raises StoreError now, before the agent starts
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lkmetrics-store", daemon=True)
        self._thread.start()

    def write(self, record: Record) -> None:
        """Enqueue a record; never blocks, never does I/O."""
        self._q.put_nowait(record)

    def close(self) -> None:
        """Write what is queued, set the exit status of this writer's sessions, close."""
        if self._closed:
            return
        self._closed = True
        self._q.put_nowait(_STOP)
        self._thread.join()
        try:
            if self._sessions:
                self._store.set_exit_status(sorted(self._sessions), self.exit_status)
        except StoreError as e:
            self.errors.append(str(e))
        finally:
            self._store.close()

    def _run(self) -> None:
        q = self._q
        stop = False
        while not stop:
            item = q.get()
            if item is _STOP:
                return
            batch = [item]
            deadline = time.monotonic() + self._interval
            while len(batch) < self._batch_max:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    item = q.get(timeout=timeout)
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            try:
                self._flush(batch)
            except Exception as e:  # never let the writer thread die silently
                self.errors.append(f"{type(e).__name__}: {e}")

    def _flush(self, records: list[Record]) -> None:
        batch = _Batch()
        for record in records:
            reason = check_record(record)
            if reason is not None:
                self.errors.append(f"record not stored: {reason}")
                continue
            batch.add(record)
            self._sessions.add(record["session_id"])
        if not batch.size:
            return
        # another process (a long import, another recorder) may hold the write lock for a
        # while: keep the batch and retry rather than lose it, for up to RETRY_FOR seconds
        give_up = time.monotonic() + RETRY_FOR
        delay = 0.05
        while True:
            try:
                self.written += self._store.write_batch(batch, status="running")
                return
            except sqlite3.OperationalError as e:
                busy = _is_busy(e)
                if busy and time.monotonic() < give_up:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self.errors.append(_describe_error(self.path, e))
                return
            except sqlite3.Error as e:
                self.errors.append(_describe_error(self.path, e))
                return
