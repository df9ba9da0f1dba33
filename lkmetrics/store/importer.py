"""``lkmetrics import``: JSON lines parsed in chunks (here or in worker processes), checked,
and written in short transactions, so an interrupted import keeps what it committed."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from lkmetrics.errors import Interrupted, StoreError, UsageError
from lkmetrics.records import SCHEMA_VERSION
from lkmetrics.store.digest_values import Collector
from lkmetrics.store.rows import (
    Batch,
    KindSpec,
    Row,
    SessionModels,
    check_record,
    session_models,
    spec,
)
from lkmetrics.store.sources import (
    GZIP_MAGIC,
    Progress,
    compressed_progress,
    is_gzip,
    signals_deferred,
)
from lkmetrics.store.validate import (
    INT64_MAX,
    MAX_DEPTH,
    TIME_MAX,
    Unstorable,
    known_fields_problem,
    problem,
    value_problem,
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


CHUNK_BYTES = 4_000_000
PARALLEL_MIN_BYTES = 16_000_000
IMPORT_TX_SECONDS = 1.0
IMPORT_CACHE_KIB = 32_768
IMPORT_CHECKPOINT_PAGES = 10_000

# (rows, bad lines as (line number, reason), number of lines)
_Parsed = tuple[Batch, list[tuple[int, str]], int]


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


def _checked_loads(text: str) -> Any:
    """:func:`json.loads`, raising :class:`Unstorable` for JSON that would not round-trip."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if value_problem(value) is not None:
        raise Unstorable(problem(value))  # the reason check_record gives
    return value


def _json_loads() -> Callable[[str], Any]:
    """The fastest JSON parser at hand that accepts exactly what :func:`_checked_loads` does.

    orjson when it is installed (an optional speed-up), else the standard library's scanner
    without the ``json.loads`` wrappers. Whatever the fast parser rejects goes to
    :func:`_checked_loads`, which then accepts it or raises the error reported for the line.
    What orjson accepts has no non-finite number and no lone surrogate (it reads an integer
    beyond 64 bits as a float: the stored text keeps it, and the validator bounds the
    integers lkmetrics reads); it nests deeper than json.loads can, so deeply nested lines go
    to ``_checked_loads`` first (see :func:`_parse_chunk`). The stdlib scanner accepts all of
    those, so its values are walked by :func:`lkmetrics.store.validate.value_problem`.
    """
    import importlib

    try:
        orjson: Any = importlib.import_module("orjson")
    except ImportError:
        scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

        def stdlib_loads(text: str) -> Any:
            try:
                value, end = scan(text, 0)
            except (StopIteration, ValueError, RecursionError):
                return _checked_loads(text)
            if end != len(text):
                return _checked_loads(text)
            if value_problem(value) is not None:
                raise Unstorable(problem(value))
            return value

        return stdlib_loads
    fast, fast_error = orjson.loads, orjson.JSONDecodeError

    def orjson_loads(text: str) -> Any:
        try:
            return fast(text)
        except fast_error:  # e.g. NaN, a lone surrogate, a 400-digit integer
            return _checked_loads(text)

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


def _parse_chunk(data: bytes, first: int,
                 known: dict[str, SessionModels] | None = None) -> _Parsed:
    """Parse and check the lines of a chunk into a batch; collect the bad ones.

    The hot loop of an import, written out by hand: the envelope check of a well-formed
    record and the row are built without calls (check_record decides every other case),
    rows are grouped by insert statement and session spans tracked as they come.
    """
    global _LOADS
    loads = _LOADS = _LOADS or _json_loads()
    batch = Batch(known)
    known = batch.known
    unresolved = batch.unresolved
    bad: list[tuple[int, str]] = []
    lines = _utf8_lines(data)
    if lines and lines[-1] == "":  # after the last newline (None: an undecodable last line)
        lines.pop()
    # kind -> (its spec, the row list of its insert statement)
    kinds: dict[str, tuple[KindSpec, list[Row]]] = {}
    spans = batch.sessions.span
    infos = batch.sessions.info
    whitespace = _WHITESPACE
    newest = SCHEMA_VERSION
    time_max = TIME_MAX
    max_depth = MAX_DEPTH
    fields_problem = known_fields_problem
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
                # what orjson reads and json.loads cannot (deep nesting) is parsed and
                # checked by _checked_loads
                if text.count("[") + text.count("{") > max_depth:
                    record = _checked_loads(text)
                else:
                    record = loads(text)
            except Unstorable as e:
                bad.append((lineno, str(e)))
                continue
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
                      and 0.0 <= t <= time_max
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
            else:
                reason = fields_problem(record, kind)
                if reason is not None:
                    bad.append((lineno, reason))
                    continue
            entry = kinds.get(kind)
            if entry is None:
                ks = spec(kind)
                group = batch.groups.get(ks.insert_sql)
                if group is None:
                    group = batch.groups[ks.insert_sql] = []
                entry = kinds[kind] = (ks, group)
            ks, group = entry
            if ks.modelled:
                models = known.get(sid)
                if models is None:
                    unresolved.add(sid)
                group.append((sid, seq, kind, t, text, *ks.values(record, models)))
            elif ks.extra:
                group.append((sid, seq, kind, t, text, *ks.values(record)))
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
                known[sid] = session_models(record)
    batch.size = size
    return batch, bad, len(lines)


def _parse_stream(f: BinaryIO, progress: Progress) -> Iterator[_Parsed]:
    """Parse a stream chunk by chunk in this process."""
    known: dict[str, SessionModels] = {}
    for first, data in _read_chunks(f):
        yield _parse_chunk(data, first, known)
        progress(len(data))  # the consumer has written the chunk


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
                parsed = _parse_stream(stdin, advance)
                _import_parsed(db, parsed, name, result, on_bad)
            elif is_gzip(p):
                with open(p, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    parsed = _parse_stream(cast(BinaryIO, f), compressed_progress(raw, advance))
                    _import_parsed(db, parsed, name, result, on_bad)
            elif workers > 0 and p.stat().st_size >= PARALLEL_MIN_BYTES:
                from lkmetrics.store.parallel import parallel_parse

                parsed = parallel_parse(p, workers, advance)
                _import_parsed(db, parsed, name, result, on_bad)
            else:
                with open(p, "rb") as f:
                    _import_parsed(db, _parse_stream(f, advance), name, result, on_bad)
        except (OSError, EOFError, zlib.error) as e:  # gzip's BadGzipFile is an OSError
            reason = getattr(e, "strerror", None) or e
            raise StoreError(f"cannot read {p} ({reason}).") from None
    return result


def _import_parsed(
    db: Database, parsed: Iterator[_Parsed], name: str, result: ImportResult, on_bad: BadLine
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
        with db.errors(), _gc_paused():
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
