"""A JSON-lines file that several processes append to at once: each record is one ``os.write``
on an ``O_APPEND`` descriptor, so lines from different processes never interleave or overwrite
each other (the kernel moves to the end and writes in one step)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, cast

from lkmetrics.render.jsonl import JsonlWriter


class AppendLines(io.TextIOBase):
    """A text stream whose every ``write`` is one system call on an ``O_APPEND`` descriptor.

    :class:`JsonlWriter` writes a whole line per call, so a line is never split across
    processes. Nothing is buffered: ``flush`` has nothing to do.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.name = str(path)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if self._fd is None:
            raise ValueError("write to a closed file")
        data = s.encode("utf-8")
        done = os.write(self._fd, data)
        while done < len(data):  # only on a full disk or similar: finish what is left
            done += os.write(self._fd, data[done:])
        return len(s)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        super().close()


def append_writer(path: Path) -> JsonlWriter:
    """A JSON-lines writer appending to ``path``, safe to share with other processes."""
    return JsonlWriter(cast(IO[str], AppendLines(path)), owns=True)
