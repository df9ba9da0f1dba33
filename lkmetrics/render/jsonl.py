"""JSON lines out: the writer behind ``--format json`` and ``--output``, and a stdout that
carries nothing but records."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO

from lkmetrics.records import Record, to_json


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


def data_stream_for_json() -> IO[str]:
    """Reserve the real stdout for JSON lines; point fd 1 (every stray print) at stderr.

    Returns a text stream on a duplicate of the original stdout. After this, anything that
    writes to ``sys.stdout`` or fd 1 -- LiveKit's console UI, logs, child processes -- lands
    on stderr, so stdout carries nothing but records.
    """
    sys.stdout.flush()
    data_fd = os.dup(1)
    os.dup2(2, 1)
    # a fresh stream for fd 1: the old one still believes it writes to a (seekable) file
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      buffering=1, closefd=False)
    return os.fdopen(data_fd, "w", encoding="utf-8", buffering=1)
