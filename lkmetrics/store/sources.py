"""The input side of ``lkmetrics import``: gzip detected by its magic bytes, progress counted
in compressed bytes, and SIGINT/SIGTERM held back while a transaction commits."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

Progress = Callable[[int], None]  # called with the bytes of input just imported


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def compressed_progress(raw: BinaryIO, advance: Progress) -> Progress:
    """Progress in bytes of the compressed file, so a bar sized by the file's size is right."""
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        pos = raw.tell()
        advance(pos - done)
        done = pos

    return progress


_DEFERRED = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered on exit) while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
