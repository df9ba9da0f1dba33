"""``lkmetrics import``: JSON lines parsed in chunks (here or in worker processes), checked,
and written in short transactions, so an interrupted import keeps what it committed."""

from __future__ import annotations

import contextlib
import gzip
import os
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from lkmetrics.errors import Interrupted, StoreError, UsageError
from lkmetrics.store.digest_values import Collector
from lkmetrics.store.parsing import Parsed, gc_paused, parse_stream
from lkmetrics.store.sources import (
    GZIP_MAGIC,
    Progress,
    compressed_progress,
    is_gzip,
    signals_deferred,
)

if TYPE_CHECKING:
    from lkmetrics.store.db import Database


@dataclass
class ImportResult:
    files: int = 0
    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    bad: int = 0


BadLine = Callable[[str, int, str], None]


def check_import_paths(paths: Sequence[Path]) -> None:
    """Raise UsageError unless every path is a file or ``-`` (stdin)."""
    for p in paths:
        if str(p) != "-" and not p.is_file():
            raise UsageError(f"{p} is not a file; pass the JSON lines written by --output.")


PARALLEL_MIN_BYTES = 16_000_000
IMPORT_TX_SECONDS = 1.0
IMPORT_CACHE_KIB = 32_768
IMPORT_CHECKPOINT_PAGES = 10_000


def import_files(
    db: Database, paths: Sequence[Path], on_bad: BadLine, *, workers: int | None = None,
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
                stdin: BinaryIO = sys.stdin.buffer
                peek = getattr(stdin, "peek", None)
                if peek is not None and peek(2)[:2] == GZIP_MAGIC:
                    stdin = cast(BinaryIO, gzip.GzipFile(fileobj=stdin, mode="rb"))
                parsed = parse_stream(stdin, advance)
                _import_parsed(db, parsed, name, result, on_bad)
            elif is_gzip(p):
                with open(p, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    parsed = parse_stream(cast(BinaryIO, f), compressed_progress(raw, advance))
                    _import_parsed(db, parsed, name, result, on_bad)
            elif workers > 0 and p.stat().st_size >= PARALLEL_MIN_BYTES:
                from lkmetrics.store.parallel import parallel_parse

                parsed = parallel_parse(p, workers, advance)
                _import_parsed(db, parsed, name, result, on_bad)
            else:
                with open(p, "rb") as f:
                    _import_parsed(db, parse_stream(f, advance), name, result, on_bad)
        except (OSError, EOFError, zlib.error) as e:  # gzip's BadGzipFile is an OSError
            reason = getattr(e, "strerror", None) or e
            raise StoreError(f"cannot read {p} ({reason}).") from None
    return result


def _import_parsed(
    db: Database, parsed: Iterator[Parsed], name: str, result: ImportResult, on_bad: BadLine
) -> None:
    # a bulk writer: a bigger page cache and fewer, larger checkpoints
    db.conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
    db.conn.execute(f"PRAGMA wal_autocheckpoint = {IMPORT_CHECKPOINT_PAGES}")
    conn = db.conn
    digests = Collector()
    unresolved: set[str] = set()
    in_tx = False
    tx_start = 0.0
    tx_inserted = tx_size = 0

    def commit() -> None:
        nonlocal in_tx, tx_inserted, tx_size
        # the commit and its count together: a Ctrl-C between them would misreport the count
        with signals_deferred():
            conn.execute("COMMIT")
            in_tx = False
            result.imported += tx_inserted
            result.duplicates += tx_size - tx_inserted
            tx_inserted = tx_size = 0

    try:
        with db.errors(), gc_paused():
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
                    digests.before(conn, batch)
                    inserted = db.insert_rows(batch, None)
                    digests.after(conn, batch, inserted)
                    tx_inserted += inserted
                    unresolved |= batch.unresolved
                    tx_size += batch.size
                    # several chunks per transaction (each commit rewrites the index
                    # pages it touched: 0.5 s -> 1 s made the import 5% faster), but short
                    # ones: other processes may be recording into this file
                    if time.monotonic() - tx_start >= IMPORT_TX_SECONDS:
                        commit()
                if unresolved:
                    if not in_tx:
                        conn.execute("BEGIN IMMEDIATE")
                        in_tx = True
                    db.resolve_models(unresolved)
                if in_tx:
                    commit()
                digests.finish(db)
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
