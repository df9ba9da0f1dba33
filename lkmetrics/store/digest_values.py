"""Building session digests (:mod:`lkmetrics.store.digest`): from rows as the store inserts
them (:class:`Values`), from a session's records in the store (:func:`build`), along an
import (:class:`Collector`), and loading them with the stale ones rebuilt (:func:`load`,
:func:`window`)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from lkmetrics.figures import describe
from lkmetrics.store import digest
from lkmetrics.store.db import Database, in_lists
from lkmetrics.store.digest import COLUMNS, NAME_OF_COLUMN, SWAP, Digest, Record
from lkmetrics.store.rows import TOKEN_COLUMNS, Batch, spec

HELD_ROWS = 500_000  # an import's rows held for digests before it saves finished sessions
_HEADS = ("session", "usage")  # the kinds whose record a digest keeps (the last usage one)


class Values:
    """What digests hold, gathered from rows laid out as the store inserts them:
    ``(session_id, seq, kind, time, json, *spec(kind).extra)``."""

    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, int]] = {}
        self.values: dict[str, dict[tuple[str, str | None], array[float]]] = {}
        self.tokens: dict[str, dict[str | None, list[int]]] = {}
        self.heads: dict[str, dict[str, tuple[int, str]]] = {}  # sid -> kind -> (seq, json)
        self.spans: dict[str, tuple[float, float]] = {}
        self._positions: dict[str, list[tuple[int, str]]] = {}
        llm = spec("llm").extra
        self._tokens = [5 + llm.index(c) for c in TOKEN_COLUMNS]

    def positions(self, kind: str) -> list[tuple[int, str]]:
        """(row index, figure name) of each figure column of the kind's rows."""
        found = self._positions.get(kind)
        if found is None:
            found = self._positions[kind] = [
                (5 + i, NAME_OF_COLUMN[c]) for i, c in enumerate(spec(kind).extra)
                if c in NAME_OF_COLUMN]
        return found

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """The rows of one insert statement (one kind, unless the kind has no figures)."""
        if not rows:
            return
        kinds = self.kinds
        positions = self.positions(str(rows[0][2]))
        if not positions:  # kinds without figure columns may share a statement
            for (sid, kind), n in Counter((r[0], r[2]) for r in rows).items():
                per_kind = kinds.setdefault(sid, {})
                per_kind[kind] = per_kind.get(kind, 0) + n
            for r in rows:
                if r[2] in _HEADS:
                    heads = self.heads.setdefault(r[0], {})
                    kept = heads.get(r[2])
                    if kept is None or r[1] > kept[0]:  # the last of each kind
                        heads[r[2]] = (r[1], r[4])
            return
        kind = str(rows[0][2])
        modelled = spec(kind).modelled  # then the model is the first extra column
        for sid, group in groupby(rows, key=itemgetter(0)):
            run = list(group)
            per_kind = kinds.setdefault(sid, {})
            per_kind[kind] = per_kind.get(kind, 0) + len(run)
            per_figure = self.values.setdefault(sid, {})
            models = {r[5] for r in run} if modelled else {None}
            for model in models:
                same = run if len(models) == 1 else [r for r in run if r[5] == model]
                for i, name in positions:
                    found = per_figure.get((name, model))
                    if found is None:
                        found = per_figure[(name, model)] = array("d")
                    found.extend([v for r in same if (v := r[i]) is not None])
                if kind == "llm":
                    counts = self.tokens.setdefault(sid, {}).setdefault(model, [0, 0, 0, 0])
                    counts[0] += len(same)
                    for j, i in enumerate(self._tokens, 1):
                        counts[j] += sum(v for r in same if (v := r[i]) is not None)

    def note_span(self, sid: str, first: float, last: float) -> None:
        """Records of the session were written from ``first`` to ``last``."""
        known = self.spans.get(sid)
        self.spans[sid] = (first, last) if known is None else (min(known[0], first),
                                                               max(known[1], last))

    def discard(self, sid: str) -> None:
        for held in (self.kinds, self.values, self.tokens, self.heads, self.spans):
            held.pop(sid, None)

    def digest(self, sid: str) -> Digest:
        packed = array("d")
        groups: list[tuple[str, str | None, int, int]] = []
        whole: dict[str, list[float]] = {}
        for (name, model), vals in self.values.get(sid, {}).items():
            if vals:
                ordered = sorted(vals)
                groups.append((name, model, len(packed), len(ordered)))
                packed.extend(ordered)
                whole.setdefault(name, []).extend(ordered)
        figures = {name: describe(vals) for name, vals in whole.items()}
        if SWAP:
            packed.byteswap()
        tokens = [(m, *c) for m, c in self.tokens.get(sid, {}).items()]
        heads = {kind: _record(text) for kind, (_, text) in self.heads.get(sid, {}).items()}
        return Digest(dict(sorted(self.kinds.get(sid, {}).items())), figures, groups,
                      packed.tobytes(), tokens,  # type: ignore[arg-type]
                      heads.get("session"), heads.get("usage"), self.spans.get(sid))


def _record(text: str) -> Record | None:
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


_SELECT = ("seq", "kind", "time", "CASE WHEN kind IN ('session', 'usage') THEN json END",
           "model", *COLUMNS, *TOKEN_COLUMNS)
_INDEX = {c: i for i, c in enumerate(_SELECT)}


def build(conn: sqlite3.Connection, session_ids: Iterable[str],
          since: float | None = None) -> dict[str, Digest]:
    """The digests of these sessions, from their records' columns (``since``: of their
    records since then only; a session without any has an empty digest)."""
    out: dict[str, Digest] = {}
    where = "" if since is None else " AND time >= ?"
    for sid in session_ids:
        by_kind: dict[str, list[tuple[Any, ...]]] = {}
        values = Values()
        times = []
        for row in conn.execute(
                f"SELECT {', '.join(_SELECT)} FROM records WHERE session_id = ?{where} "
                "ORDER BY seq", (sid,) if since is None else (sid, since)):
            by_kind.setdefault(str(row[1]), []).append(row)
            times.append(row[2])
        if times:
            values.note_span(sid, min(times), max(times))
        for kind, rows in by_kind.items():
            # laid out as inserted: each of the kind's extra columns in its place
            picks = [_INDEX[c] for c in spec(kind).extra]
            values.add_rows([(sid, r[0], kind, r[2], r[3], *(r[i] for i in picks))
                             for r in rows])
        out[sid] = values.digest(sid)
    return out


class Collector:
    """Digests of the sessions an import writes, from the rows it inserts.

    A session that held records before the import, or of which a row was ignored (a
    duplicate), is rebuilt from the store instead. Memory stays bounded: once the rows held
    pass ``limit``, the sessions the last batch did not touch get their digest saved (in
    the import's transaction) and are forgotten; one that shows up again is rebuilt.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.values = Values()
        self.seen: set[str] = set()
        self.rebuild: set[str] = set()
        self.saved: set[str] = set()
        self.limit = HELD_ROWS if limit is None else limit
        self._rows = 0

    def before(self, conn: sqlite3.Connection, batch: Batch) -> None:
        """Note which of the batch's sessions the store holds already (call before insert)."""
        self.rebuild.update(sid for sid in batch.sessions.span if sid in self.saved)
        new = [sid for sid in batch.sessions.span if sid not in self.seen]
        for chunk, marks in in_lists(new):
            self.rebuild.update(str(r[0]) for r in conn.execute(
                f"SELECT id FROM sessions WHERE id IN ({marks})", chunk))
        self.seen.update(new)

    def after(self, conn: sqlite3.Connection, batch: Batch, inserted: int) -> None:
        """Collect the rows of an inserted batch (``inserted``: how many were new); inside
        the import's transaction."""
        if inserted != batch.size:
            self.rebuild.update(batch.sessions.span)
        # records written before their session's opening record get their model later
        self.rebuild.update(batch.unresolved)
        for rows in batch.groups.values():
            self.values.add_rows(rows)
        for sid, (first, last) in batch.sessions.span.items():
            self.values.note_span(sid, first, last)
        self._rows += batch.size
        if self._rows > self.limit:
            done = [sid for sid in self.values.kinds
                    if sid not in batch.sessions.span and sid not in self.rebuild]
            digest.save(conn, {sid: self.values.digest(sid) for sid in done},
                        digest.current_changes(conn, done))
            for sid in done:
                self.values.discard(sid)
            self.saved.update(done)
            self._rows = sum(sum(k.values()) for k in self.values.kinds.values())

    def finish(self, db: Database) -> None:
        """Save the digests (own transaction, after the import's last commit)."""
        if not self.seen:
            return
        with db.transaction():
            conn = db.conn
            ids = sorted(self.seen - (self.saved - self.rebuild))
            changes = digest.current_changes(conn, ids)
            digests = {sid: self.values.digest(sid) for sid in ids if sid not in self.rebuild}
            self.values = Values()
            digests.update(build(conn, sorted(self.rebuild & self.seen)))
            digest.save(conn, digests, changes)


def load(conn: sqlite3.Connection, session_ids: Sequence[str] | None) -> dict[str, Digest]:
    """The digests of these sessions (every session when None): stored ones that are still
    valid, the others built now and saved if the store can be written at once."""
    changes = digest.current_changes(conn, session_ids)
    found: dict[str, Digest] = {}
    if session_ids is None:
        rows = conn.execute(
            "SELECT session_id, changes, data, packed FROM session_digests").fetchall()
    else:
        rows = []
        for chunk, marks in in_lists(session_ids):
            rows += conn.execute(
                "SELECT session_id, changes, data, packed FROM session_digests "
                f"WHERE session_id IN ({marks})", chunk).fetchall()
    for sid, built_at, text, packed in rows:
        if changes.get(sid) == built_at:
            stored = Digest.from_row(text, packed)
            if stored is not None:
                found[sid] = stored
    stale = [sid for sid in changes if sid not in found]
    if stale:
        built = build(conn, stale)
        found.update(built)
        _try_save(conn, built, changes)
    return {sid: found[sid] for sid in changes}


def window(conn: sqlite3.Connection, session_ids: Sequence[str] | None,
           since: float | None) -> dict[str, Digest]:
    """Digests of the records in scope, by session: with no ``since``, those of
    :func:`load`; with one, the digests of the sessions whose every record is that recent,
    and for a session that began before it and went on after it, a digest of its records
    since then (built now, not saved). Sessions with no record in scope are left out."""
    if since is None:
        return {sid: d for sid, d in load(conn, session_ids).items() if d.kinds}
    wanted = None if session_ids is None else set(session_ids)
    candidates = [str(sid) for (sid,) in conn.execute(
        "SELECT id FROM sessions WHERE ended IS NULL OR ended >= ? ORDER BY id", (since,))
        if wanted is None or sid in wanted]
    out: dict[str, Digest] = {}
    partial = []
    for sid, d in load(conn, candidates).items():
        if d.span is None or d.span[1] < since:
            continue
        if d.span[0] >= since:
            out[sid] = d
        else:
            partial.append(sid)
    out.update((sid, d) for sid, d in build(conn, partial, since).items()
               if d.kinds)
    return dict(sorted(out.items()))


def _try_save(conn: sqlite3.Connection, digests: dict[str, Digest],
              changes: dict[str, int]) -> None:
    """Save digests unless another writer holds the store (or it is read-only): a read
    never waits for a write it does not need."""
    if conn.in_transaction:
        return
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # only those whose session did not change while they were built
                now = digest.current_changes(conn, list(digests))
                digest.save(conn, {s: d for s, d in digests.items()
                                   if now.get(s) == changes.get(s)}, changes)
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
