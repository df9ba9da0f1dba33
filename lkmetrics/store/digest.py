"""Per-session digests: what a report over whole sessions reads of each (records per kind,
each figure's statistics and sorted values per model, token totals, the opening and last usage
records), kept in the store so such a report reads a row per session instead of every record.

A digest is valid while its session's ``changes`` counter (bumped by every write of the
session's records, see :meth:`lkmetrics.store.db.Database.insert_rows`) equals the one it
was built at. ``import`` builds the digests of the sessions it wrote from the rows it
inserted; any other stale or missing digest is built from the records' columns by the read
that needs it, and saved when the store can be written. The building side is
:mod:`lkmetrics.store.digest_values`; this module stores, loads and reads digests.
"""

from __future__ import annotations

import functools
import importlib
import json
import sqlite3
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lkmetrics.figures import FIGURE_COLUMNS, STORED_FIGURES, Figure
from lkmetrics.store.db import in_lists

Stats = dict[str, float | int | None]
Record = dict[str, Any]
COLUMNS = tuple(FIGURE_COLUMNS[f.name] for f in STORED_FIGURES)
NAME_OF_COLUMN = {FIGURE_COLUMNS[f.name]: f.name for f in STORED_FIGURES}
SWAP = sys.byteorder == "big"  # values are packed little-endian, whatever the machine


@dataclass
class Digest:
    """One whole session, as reports read it.

    ``kinds``: records per kind; ``figures``: describe() of each stored figure; ``groups``:
    (figure, model, first, count) of the figure's values, sorted, packed as doubles in
    ``packed``; ``tokens``: [model, requests, prompt, completion, total] of its LLM records;
    ``session`` and ``usage``: its opening record and its last (cumulative) usage record
    (the last of each, by seq); ``span``: the time of its first and last record.
    """

    kinds: dict[str, int] = field(default_factory=dict)
    figures: dict[str, Stats] = field(default_factory=dict)
    groups: list[tuple[str, str | None, int, int]] = field(default_factory=list)
    packed: bytes = b""
    tokens: list[tuple[str | None, int, int, int, int]] = field(default_factory=list)
    session: Record | None = None
    usage: Record | None = None
    span: tuple[float, float] | None = None  # the first and last record's time

    def to_row(self) -> tuple[str, bytes]:
        return json.dumps({"kinds": self.kinds, "figures": self.figures, "groups": self.groups,
                           "tokens": self.tokens, "session": self.session,
                           "usage": self.usage, "span": self.span},
                          separators=(",", ":")), self.packed

    @classmethod
    def from_row(cls, text: str, packed: bytes) -> Digest | None:
        """The digest stored as ``text`` and ``packed``, or None when it is not one (it is
        rebuilt then)."""
        try:
            data = _loads(text)
            kinds, figures = data["kinds"], data["figures"]
            groups = [(str(f), None if m is None else str(m), int(a), int(n))
                      for f, m, a, n in data["groups"]]
            tokens = [(None if m is None else str(m), int(n), int(p), int(c), int(t))
                      for m, n, p, c, t in data["tokens"]]
            session, usage = data["session"], data["usage"]
            span = None if data["span"] is None else (float(data["span"][0]),
                                                      float(data["span"][1]))
        except (ValueError, TypeError, KeyError, IndexError):
            return None
        if (not isinstance(kinds, dict) or not isinstance(figures, dict)
                or not all(type(n) is int for n in kinds.values())
                or not all(isinstance(v, dict) for v in figures.values())
                or any(a < 0 or n < 0 or (a + n) * 8 > len(packed) for _, _, a, n in groups)):
            return None
        return cls(kinds, figures, groups, bytes(packed), tokens,
                   session if isinstance(session, dict) else None,
                   usage if isinstance(usage, dict) else None, span)

    def values(self, figure: str) -> Iterator[tuple[str | None, memoryview]]:
        """(model, sorted values as doubles) of each group of the figure."""
        view = memoryview(self.packed)
        for name, model, start, count in self.groups:
            if name == figure:
                yield model, view[start * 8:(start + count) * 8]


def _loads(text: str) -> Any:
    return _parser()(text)


@functools.cache
def _parser() -> Callable[[str], Any]:
    """orjson's parser when it is installed (an optional speed-up, as in import)."""
    try:
        return importlib.import_module("orjson").loads  # type: ignore[no-any-return]
    except ImportError:
        return json.loads


def grouped_values(digests: Mapping[str, Digest], figures: Iterable[Figure],
                   by: str | None) -> dict[str, dict[str, list[float]]]:
    """What :meth:`lkmetrics.store.Store.figure_values` gives for each figure over whole
    sessions, from their digests: figure name -> group -> sorted values."""
    out: dict[str, dict[str, list[float]]] = {}
    for figure in figures:
        groups: dict[str, array[float]] = {}
        for sid, d in digests.items():
            for model, packed in d.values(figure.name):
                if by == "tool" and figure.kind != "tool":
                    continue
                if by == "session":
                    key = sid
                elif by in ("model", "tool"):
                    key = model or "unknown"
                else:
                    key = figure.kind if by == "kind" else "all"
                found = groups.get(key)
                if found is None:
                    found = groups[key] = array("d")
                found.frombytes(packed)
        if SWAP:
            for v in groups.values():
                v.byteswap()
        out[figure.name] = {k: sorted(v) for k, v in groups.items() if v}
    return out


def token_totals(digests: Iterable[Digest]) -> list[tuple[str, int, int, int, int]]:
    """Per LLM model: requests, prompt, completion and total tokens (as the store's
    ``token_totals`` gives them)."""
    acc: dict[str, list[int]] = {}
    for d in digests:
        for model, *counts in d.tokens:
            row = acc.setdefault(model or "unknown", [0, 0, 0, 0])
            for i, n in enumerate(counts):
                row[i] += n
    return [(m, *acc[m]) for m in sorted(acc)]  # type: ignore[misc]


def kind_totals(digests: Iterable[Digest]) -> dict[str, int]:
    """Records per kind over these sessions, by kind name."""
    totals: dict[str, int] = {}
    for d in digests:
        for kind, n in d.kinds.items():
            totals[kind] = totals.get(kind, 0) + n
    return dict(sorted(totals.items()))


def save(conn: sqlite3.Connection, digests: dict[str, Digest],
         changes: dict[str, int]) -> None:
    """Store digests built at these ``changes`` counters (inside the caller's transaction)."""
    conn.executemany(
        "INSERT OR REPLACE INTO session_digests (session_id, changes, data, packed) "
        "VALUES (?, ?, ?, ?)",
        [(sid, changes[sid], *d.to_row()) for sid, d in digests.items() if sid in changes])


def current_changes(conn: sqlite3.Connection,
                    session_ids: Sequence[str] | None) -> dict[str, int]:
    """Each session's ``changes`` counter (every session when ``session_ids`` is None)."""
    if session_ids is None:
        return {str(s): int(c) for s, c in conn.execute("SELECT id, changes FROM sessions")}
    out: dict[str, int] = {}
    for chunk, marks in in_lists(session_ids):
        out.update((str(s), int(c)) for s, c in conn.execute(
            f"SELECT id, changes FROM sessions WHERE id IN ({marks})", chunk))
    return out
