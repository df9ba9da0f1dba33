"""JSON lines to rows: chunks of a file parsed and checked into batches, the one parser both
the importer and its worker processes (:mod:`lkmetrics.store.parallel`) use."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from lkmetrics.records import SCHEMA_VERSION
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
    Progress,
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

CHUNK_BYTES = 4_000_000

# (rows, bad lines as (line number, reason), number of lines)
Parsed = tuple[Batch, list[tuple[int, str]], int]


def read_chunks(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
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
    to ``_checked_loads`` first (see :func:`parse_chunk`). The stdlib scanner accepts all of
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
def gc_paused() -> Iterator[None]:
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


def parse_chunk(data: bytes, first: int,
                 known: dict[str, SessionModels] | None = None) -> Parsed:
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
    with gc_paused():
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


def parse_stream(f: BinaryIO, progress: Progress) -> Iterator[Parsed]:
    """Parse a stream chunk by chunk in this process."""
    known: dict[str, SessionModels] = {}
    for first, data in read_chunks(f):
        yield parse_chunk(data, first, known)
        progress(len(data))  # the consumer has written the chunk


