"""Where records go once captured: a queue drained by one thread that feeds the writers.

The agent's event loop only ever calls :meth:`Pipeline.put` (a lock-free ``SimpleQueue``
append). Turning LiveKit objects into records, numbering them, summarising, rendering and
writing files all happen on the pipeline's own thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from lkmetrics.records import SCHEMA_VERSION, Record, to_json
from lkmetrics.stats import SummaryBuilder


class Writer(Protocol):
    """Receives finished records, in order, on the pipeline thread."""

    def write(self, record: Record) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    """One JSON line per record, flushed record by record (``--output`` and ``--format json``)."""

    def __init__(self, stream: IO[str], *, owns: bool = False) -> None:
        self._stream = stream
        self._owns = owns

    @classmethod
    def append_to(cls, path: Path) -> JsonlWriter:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(open(path, "a", encoding="utf-8", buffering=1), owns=True)  # noqa: SIM115

    def write(self, record: Record) -> None:
        self._stream.write(to_json(record) + "\n")
        self._stream.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
            if self._owns:
                self._stream.close()


# A converter turns a raw item captured on the loop into a record body (without seq/time),
# or None to drop it. Items that are already records (dicts) pass through unchanged.
Converter = Callable[[Any], "Record | None"]

_END = object()
_STOP = object()
END_KIND = "_end"  # marks a session's end on the way from a job process to the CLI


class Pipeline:
    """The single consumer of captured items. Thread-safe ``put``; ``close`` drains and joins."""

    def __init__(self, writers: Sequence[Writer], *, summarise: bool = True) -> None:
        self._writers = list(writers)
        self._summarise = summarise
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._summaries: dict[str, SummaryBuilder] = {}
        self._ended: set[str] = set()
        self._closed = False
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="lkmetrics-pipeline", daemon=True)
        self._thread.start()

    # -- producer side (any thread, including the agent's event loop) --

    def put(self, session_id: str, item: Any, convert: Converter | None = None) -> None:
        """Enqueue a captured item. O(1), never blocks, never does I/O."""
        self._q.put_nowait((session_id, item, convert, time.time()))

    def end_session(self, session_id: str) -> None:
        """Ask for the session's summary record once everything before it is written."""
        self._q.put_nowait((session_id, _END, None, time.time()))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far has been written. Call off the event loop."""
        done = threading.Event()
        self._q.put_nowait(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Summarise open sessions, flush and close every writer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._q.put_nowait(_STOP)
        self._thread.join(timeout)
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.close()

    # -- consumer side --

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                for session_id in list(self._summaries):
                    self._finish(session_id)
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._handle(*item)
            except Exception as e:  # a bad record must not stop the stream
                self.errors.append(f"{type(e).__name__}: {e}")

    def _handle(self, session_id: str, item: Any, convert: Converter | None, t: float) -> None:
        if item is _END:
            self._finish(session_id)
            return
        record = convert(item) if convert is not None else item
        if record is None:
            return
        if "seq" not in record:
            record = self._envelope(session_id, record, t)
        else:  # numbered elsewhere (a job process): keep counting from there
            self._seq[session_id] = max(self._seq.get(session_id, 0), int(record["seq"]))
        if self._summarise and session_id not in self._ended:
            self._summaries.setdefault(session_id, SummaryBuilder()).add(record)
        self._emit(record)

    def _envelope(self, session_id: str, body: Record, t: float) -> Record:
        seq = self._seq.get(session_id, 0) + 1
        self._seq[session_id] = seq
        record: Record = {
            "schema": SCHEMA_VERSION,
            "kind": body.get("kind"),
            "session_id": session_id,
            "seq": seq,
            "time": t,
        }
        record.update(body)
        return record

    def _finish(self, session_id: str) -> None:
        if session_id in self._ended:
            return
        self._ended.add(session_id)
        if not self._summarise:  # a job process: the CLI process summarises
            self._emit({"kind": END_KIND, "session_id": session_id})
            return
        builder = self._summaries.pop(session_id, None) or SummaryBuilder()
        summary = builder.summary(session_id)
        self._emit(self._envelope(session_id, summary, time.time()))

    def _emit(self, record: Record) -> None:
        for w in self._writers:
            try:
                w.write(record)
            except Exception as e:
                self.errors.append(f"{type(w).__name__}: {type(e).__name__}: {e}")


def data_stream_for_json() -> IO[str]:
    """Reserve the real stdout for JSON lines; point fd 1 (every stray print) at stderr.

    Returns a text stream on a duplicate of the original stdout. After this, anything that
    writes to ``sys.stdout`` or fd 1 -- LiveKit's console UI, logs, child processes -- lands
    on stderr, so stdout carries nothing but records.
    """
    import sys

    sys.stdout.flush()
    data_fd = os.dup(1)
    os.dup2(2, 1)
    # a fresh stream for fd 1: the old one still believes it writes to a (seekable) file
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      buffering=1, closefd=False)
    return os.fdopen(data_fd, "w", encoding="utf-8", buffering=1)
