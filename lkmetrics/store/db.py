"""One open metrics database: opening (create, refuse, migrate), transactions and writes.

The database runs in WAL mode; writers take ``BEGIN IMMEDIATE`` transactions and wait on a
busy timeout, so several processes can record into one file at once. Reads are in
:mod:`lkmetrics.store.queries`. Nothing here imports livekit.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from lkmetrics.errors import NotFoundError, StoreError
from lkmetrics.records import Record, stage_identity
from lkmetrics.safety import create_private
from lkmetrics.store.rows import SESSION_FIELDS, Batch, SessionTracker
from lkmetrics.store.schema import LATEST_VERSION, MIGRATIONS, refill

DB_NAME = "metrics.db"
BUSY_TIMEOUT_MS = 30_000
IN_LIST = 500  # ids per IN (...) list, well under SQLite's limit of bound parameters

D = TypeVar("D", bound="Database")


def default_db_path() -> Path:
    """``$LKMETRICS_HOME/metrics.db``, else ``metrics.db`` in typer's per-user app dir."""
    from lkmetrics.home import app_dir

    return app_dir() / DB_NAME


def in_lists(ids: Sequence[str]) -> Iterator[tuple[Sequence[str], str]]:
    """``ids`` in slices of at most :data:`IN_LIST`, each with its ``?,?,...`` placeholders
    for an ``IN (...)`` list."""
    for i in range(0, len(ids), IN_LIST):
        chunk = ids[i:i + IN_LIST]
        yield chunk, ",".join("?" * len(chunk))


def is_busy(e: BaseException) -> bool:
    msg = str(e)
    return "locked" in msg or "busy" in msg


def describe_error(path: Path, e: BaseException) -> str:
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
    if is_busy(e):
        return f"{path} is locked by another process for too long ({msg}); try again."
    if "unable to open" in msg:
        return (
            f"cannot open {path} ({msg}); check that its folder exists and is writable, "
            "or pass --db with another file."
        )
    return f"cannot use the metrics database {path} ({msg})."


def writable(path: Path) -> bool:
    """Whether this process may write ``path`` and create files beside it (SQLite's journal,
    -wal and -shm)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def read_only_uri(path: Path) -> str:
    """An SQLite URI opening ``path`` read-only. In a folder this process cannot write either,
    also ``immutable=1``: SQLite cannot create the -shm file a WAL reader needs there, and
    nobody (but an owner who makes it writable again) can change the file meanwhile. (Records
    still in a -wal file beside it, never checkpointed, are then not seen: a writer that
    closed cleanly left none.)"""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    if not os.access(path.parent, os.W_OK):
        uri += "&immutable=1"
    return uri


class Database:
    """One open metrics database. Create with :meth:`open`; use from one thread at a time."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    # -- opening --

    read_only = False  # opened with SQLite's mode=ro: nothing can be written through it

    @classmethod
    def open(cls: type[D], path: Path, *, create: bool = True, reader: bool = False) -> D:
        """Open (and create or migrate) the store at ``path``.

        ``create=False`` (the reporting commands) raises NotFoundError when there is no file.
        ``reader=True`` (the commands that only read) opens a store this process cannot write
        (the file, or its folder, read-only) read-only instead of failing; such a store is
        never migrated, so one older than this lkmetrics is refused with a line saying so.
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
            with contextlib.suppress(OSError):  # SQLite gives its -wal and -shm the same mode
                create_private(path)  # readable by its owner only: records may hold prompts
        read_only = reader and not writable(path)
        if not reader and path.exists() and not writable(path):  # before it runs, not after
            which = "its folder" if os.access(path, os.W_OK) else "the file"
            raise StoreError(
                f"{path} is read-only ({which}): a command that records "
                "needs to write it; make it writable, or pass --db with another file (or "
                "--no-record where the command has it).")
        try:
            conn = sqlite3.connect(
                read_only_uri(path) if read_only else path, uri=read_only,
                timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False,
            )
        except sqlite3.Error as e:
            raise StoreError(describe_error(path, e)) from None
        store = cls(conn, path)
        store.read_only = read_only
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
            if self.read_only:
                if version < LATEST_VERSION:
                    raise StoreError(
                        f"{self.path} is read-only and has store schema {version}, older than "
                        f"this lkmetrics reads ({LATEST_VERSION}); a command that writes "
                        "(e.g. `lkmetrics import`) upgrades it once it is writable, or pass "
                        "--db with another file."
                    )
                return  # nothing to switch or set: SQLite writes nothing through mode=ro
            # migrate before the switch to WAL: a migration that fails rolls back and leaves
            # the file exactly as it was
            if version < LATEST_VERSION:
                self.migrate()
            self._use_wal()
            conn.execute("PRAGMA synchronous = NORMAL")

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
                if not is_busy(e) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def migrate(self) -> int:
        """Bring the schema to the latest version; returns the version it was at."""
        with self.errors(), self.transaction():
            version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
            for index in range(version, LATEST_VERSION):
                MIGRATIONS[index](self.conn)
            if version >= 1:  # a store that may hold records: fill the columns added since
                refill(self.conn)
            self.conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        return version

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self: D) -> D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn sqlite3 errors into one-line StoreErrors."""
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(describe_error(self.path, e)) from None

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

    def write_batch(self, batch: Batch, *, status: str | None = None) -> int:
        """Insert a batch (duplicates ignored) and upsert its sessions in one transaction.

        ``status`` is the exit status given to sessions created here ("running" for a live
        recording, None for an import). Returns the number of records inserted.
        """
        with self.transaction():
            return self.insert_rows(batch, status)

    def insert_rows(self, batch: Batch, status: str | None) -> int:
        conn = self.conn
        before = conn.total_changes
        for sql, rows in batch.groups.items():
            conn.executemany(sql, rows)
        inserted = conn.total_changes - before
        self._upsert_sessions(batch.sessions, status)
        return inserted

    def _upsert_sessions(self, sessions: SessionTracker, status: str | None) -> None:
        conn = self.conn
        conn.executemany(
            "INSERT INTO sessions (id, started, ended, exit_status, changes) "
            "VALUES (?, ?, ?, ?, 1) ON CONFLICT (id) DO UPDATE SET "
            "started = min(coalesce(started, excluded.started), excluded.started), "
            "ended = max(coalesce(ended, excluded.ended), excluded.ended), "
            "changes = changes + 1",  # a digest built before is stale now
            [(sid, span[0], span[1], status) for sid, span in sessions.span.items()],
        )
        if sessions.info:
            sets = ", ".join(f"{f} = ?" for f in SESSION_FIELDS)
            conn.executemany(
                f"UPDATE sessions SET {sets}, started = ? WHERE id = ?",
                [(*session_values(rec), rec["time"], sid) for sid, rec in sessions.info.items()],
            )

    def resolve_models(self, session_ids: Iterable[str]) -> None:
        """Give the records of these sessions their session's model identities.

        For records written before their session's opening record was seen (a parallel
        import parses a session's records in several processes). Inside the caller's
        transaction.
        """
        conn = self.conn
        for stage, kinds in (("llm", "'llm', 'realtime', 'turn', 'eou'"), ("stt", "'stt'"),
                             ("tts", "'tts'")):
            conn.executemany(
                f"UPDATE records SET model = coalesce((SELECT s.{stage} FROM sessions s "
                f"WHERE s.id = records.session_id AND s.{stage} != 'local'), model) "
                f"WHERE session_id = ? AND kind IN ({kinds})",
                [(sid,) for sid in session_ids],
            )

    def set_exit_status(self, session_ids: Iterable[str], status: str) -> None:
        with self.errors(), self.transaction():
            self.conn.executemany(
                "UPDATE sessions SET exit_status = ? WHERE id = ?",
                [(status, sid) for sid in session_ids],
            )

    def insert(self, records: Iterable[Record], *, status: str | None = None) -> int:
        """Insert checked records in one transaction (tests and tools)."""
        batch = Batch()
        for record in records:
            batch.add(record)
        with self.errors():
            return self.write_batch(batch, status=status)


def session_values(session: Record) -> tuple[str | None, ...]:
    """The ``sessions`` columns of SESSION_FIELDS from an opening record; the stage columns
    hold model identities (:func:`lkmetrics.records.stage_identity`)."""
    out = []
    for f in SESSION_FIELDS:
        value = session.get(f)
        if f in ("llm", "stt", "tts"):
            value = stage_identity(session, f) or value
        out.append(_text(value))
    return tuple(out)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
