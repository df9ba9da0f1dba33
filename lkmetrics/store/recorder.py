"""The live recorder: a pipeline writer that commits records into the store from its thread.

A batch is committed at most ``FLUSH_INTERVAL`` (200 ms) after its first record reaches the
writer, so a process killed with SIGKILL loses at most its last 200 ms of records.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import time
from pathlib import Path

from lkmetrics.background import QueueThread
from lkmetrics.errors import Stopped, StoreError
from lkmetrics.records import Record
from lkmetrics.store.db import describe_error, is_busy
from lkmetrics.store.queries import Store
from lkmetrics.store.rows import Batch, SessionModels, check_record

log = logging.getLogger("lkmetrics")

FLUSH_INTERVAL = 0.2
BATCH_MAX = 1000
RETRY_FOR = 300.0  # seconds a recorder keeps retrying a batch while the database is locked


class StoreWriter(QueueThread):
    """A pipeline writer that records into the store from its own thread.

    ``write`` only appends to a queue. The thread commits a batch at most ``FLUSH_INTERVAL``
    after its first record arrived, or sooner when ``BATCH_MAX`` records are waiting; the
    database stays consistent (WAL, one transaction per batch). Set ``exit_status`` before
    :meth:`close`; it goes into the session rows this writer made.
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
        self._known: dict[str, SessionModels] = {}  # model identities of the sessions seen
        self._unresolved: set[str] = set()
        self._store = Store.open(self.path)  # raises StoreError now, before the agent starts
        super().__init__("lkmetrics-store")

    def write(self, record: Record) -> None:
        """Enqueue a record; never blocks, never does I/O."""
        self.enqueue(record)

    def close(self) -> None:
        """Write what is queued, set the exit status of this writer's sessions, close."""
        if not self.stop():
            return
        try:
            if self._sessions:
                self._store.set_exit_status(sorted(self._sessions), self.exit_status)
            if self._unresolved:
                with self._store.errors(), self._store.transaction():
                    self._store.resolve_models(sorted(self._unresolved))
        except StoreError as e:
            self._error(str(e))
        finally:
            self._store.close()

    def _error(self, message: str) -> None:
        self.errors.append(message)
        log.warning("could not record: %s", message)

    def run(self) -> None:
        stop = False
        while not stop:
            try:
                batch = [self.get()]
            except Stopped:
                return
            deadline = time.monotonic() + self._interval
            while len(batch) < self._batch_max:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(self.get(timeout))
                except queue.Empty:
                    break
                except Stopped:
                    stop = True
                    break
            try:
                self._flush(batch)
            except Exception as e:  # never let the writer thread die silently
                self._error(f"{type(e).__name__}: {e}")

    def _flush(self, records: list[Record]) -> None:
        batch = Batch(self._known)
        for record in records:
            reason = check_record(record)
            if reason is not None:
                self._error(f"record not stored: {reason}")
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
                self._unresolved |= batch.unresolved
                return
            except sqlite3.OperationalError as e:
                if is_busy(e) and time.monotonic() < give_up:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self._error(describe_error(self.path, e))
                return
            except sqlite3.Error as e:
                self._error(describe_error(self.path, e))
                return
