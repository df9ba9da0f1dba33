"""Carries records from job processes back to the CLI process that owns the output.

In ``run``/``dev`` LiveKit runs each job in a child process. The CLI process listens on a
Unix socket (its path in ``LKMETRICS_RELAY``); a job process captures into its own pipeline
whose only writer is a :class:`RelayWriter` that sends finished records as JSON lines. The
CLI process feeds them into its pipeline, which renders, writes ``--output`` and summarises,
so the user sees one intact stream whichever process a session ran in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

from lkmetrics.pipeline import Pipeline
from lkmetrics.records import Record, to_json

log = logging.getLogger("lkmetrics")

RELAY_ENV = "LKMETRICS_RELAY"
OWNER_ENV = "LKMETRICS_OWNER_PID"
# a control line on the relay socket (never a record): the session has ended in the job
END_MARK = "lkmetrics.relay.end"


class RelayServer:
    """Accepts job processes' record streams and feeds them into ``pipeline``."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._dir = tempfile.mkdtemp(prefix="lkmetrics-")  # mode 0700: this user's only
        self.path = str(Path(self._dir) / "relay.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(64)
        self._threads: list[threading.Thread] = []
        self._closed = False
        t = threading.Thread(target=self._accept, name="lkmetrics-relay", daemon=True)
        t.start()

    @property
    def directory(self) -> str:
        """The private temp dir of this run (the socket, the settings file); removed on close."""
        return self._dir

    def export_env(self) -> None:
        os.environ[RELAY_ENV] = self.path
        os.environ[OWNER_ENV] = str(os.getpid())

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._read, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("r", encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError as e:
                    log.warning("relay: dropped a line that is not JSON (%s): %.80r", e, line)
                    continue
                if not isinstance(record, dict):
                    log.warning("relay: dropped a line that is not a record: %.80r", line)
                    continue
                sid = str(record.get("session_id", "unknown"))
                if record.get(END_MARK):
                    self._pipeline.end_session(sid)
                else:
                    self._pipeline.put(sid, record)

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting and wait briefly for open streams to drain."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        for t in self._threads:
            t.join(timeout)
        shutil.rmtree(self._dir, ignore_errors=True)


class RelayWriter:
    """A pipeline Writer that sends records to the CLI process's RelayServer."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._file = self._sock.makefile("w", encoding="utf-8", buffering=1)

    def write(self, record: Record) -> None:
        self._file.write(to_json(record) + "\n")
        self._file.flush()

    def end_session(self, session_id: str) -> None:
        """Tell the CLI process that the session ended (it then writes the summary)."""
        self.write({END_MARK: True, "session_id": session_id})

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()


def in_owner_process() -> bool:
    """True where the CLI itself runs (console: jobs run in a thread of this process)."""
    owner = os.environ.get(OWNER_ENV)
    return owner is None or owner == str(os.getpid())
