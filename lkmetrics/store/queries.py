"""Reading the store: sessions, figure values, tokens and usage for reports.

:class:`Store` is :class:`~lkmetrics.store.db.Database` plus the queries that reports and
``sessions`` read (reports through the session digests, :meth:`Store.window`, never parsing
JSON for a figure it has a column for); import and export are lkmetrics.store.importer and
lkmetrics.store.export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lkmetrics.errors import NotFoundError, UsageError
from lkmetrics.figures import FIGURE_COLUMNS, Figure, figure_value
from lkmetrics.records import usage_identity
from lkmetrics.store.db import Database, in_lists
from lkmetrics.store.digest import Digest


@dataclass(frozen=True)
class SessionRow:
    id: str
    started: float | None
    ended: float | None
    command: str | None
    stt: str | None
    llm: str | None
    tts: str | None
    voice: str | None
    host: str | None
    lkmetrics_version: str | None
    livekit_agents_version: str | None
    exit_status: str | None

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


_SESSION_COLUMNS = (
    "id, started, ended, command, stt, llm, tts, voice, host, lkmetrics_version, "
    "livekit_agents_version, exit_status"
)


@dataclass(frozen=True)
class Scope:
    """Which records a query reads: some sessions (None: all) and a start time."""

    session_ids: tuple[str, ...] | None = None
    since: float | None = None

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        prefix = f"{alias}." if alias else ""
        clauses: list[str] = []
        params: list[Any] = []
        if self.session_ids is not None:
            clauses.append(
                f"{prefix}session_id IN ({','.join('?' * len(self.session_ids))})"
            )
            params.extend(self.session_ids)
        if self.since is not None:
            clauses.append(f"{prefix}time >= ?")
            params.append(self.since)
        return "".join(f" AND {c}" for c in clauses), params




class Store(Database):
    """An open metrics database with its queries. ``Store.open(path)`` creates or migrates it."""

    # -- reading --

    def count_records(self) -> int:
        with self.errors():
            return int(self.conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def has_sessions(self) -> bool:
        with self.errors():
            return self.conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is not None

    def require_sessions(self) -> None:
        if not self.has_sessions():
            raise NotFoundError(
                f"the store {self.path} holds no sessions yet; run an agent command "
                "(recording is on by default) or `lkmetrics import FILE` first."
            )

    def sessions(self, limit: int | None = None) -> list[SessionRow]:
        """Sessions, newest first."""
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY started DESC, id DESC"
        params: list[Any] = []
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        with self.errors():
            return [SessionRow(*r) for r in self.conn.execute(sql, params)]

    def session(self, session_id: str) -> SessionRow:
        with self.errors():
            r = self.conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        if r is None:
            raise NotFoundError(f"no session {session_id!r} in {self.path}.")
        return SessionRow(*r)

    def resolve_session(self, ref: str) -> str:
        """A session id from ``last``, a full id or a unique prefix of one."""
        try:
            ref.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 on the command line
            raise UsageError(
                f"session id {ref.encode('utf-8', 'backslashreplace').decode()} is not valid "
                "UTF-8 text; see `lkmetrics sessions` for the ids."
            ) from None
        self.require_sessions()
        with self.errors():
            if ref == "last":
                r = self.conn.execute(
                    "SELECT id FROM sessions ORDER BY started DESC, id DESC LIMIT 1"
                ).fetchone()
                return str(r[0])
            if self.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (ref,)).fetchone():
                return ref
            found = [
                str(r[0]) for r in self.conn.execute(
                    "SELECT id FROM sessions WHERE substr(id, 1, ?) = ? LIMIT 2",
                    (len(ref), ref),
                )
            ]
        if len(found) == 1:
            return found[0]
        if found:
            raise NotFoundError(
                f"session {ref!r} is ambiguous in {self.path}; give more of the id "
                "(`lkmetrics sessions` lists them)."
            )
        raise NotFoundError(
            f"no session {ref!r} in {self.path}; `lkmetrics sessions` lists the recorded ones."
        )

    def bench_ids(self, session_ids: Sequence[str]) -> dict[str, str]:
        """The bench id of each of these sessions that a bench made (from its session record:
        the sessions table has no column for it; the unique (session_id, seq) index finds it)."""
        out: dict[str, str] = {}
        with self.errors():
            for chunk, marks in in_lists(session_ids):
                for sid, bench in self.conn.execute(
                    "SELECT session_id, json_extract(json, '$.bench_id') FROM records "
                    f"WHERE session_id IN ({marks}) AND kind = 'session'", chunk,
                ):
                    if bench is not None:
                        out[str(sid)] = str(bench)
        return out

    def bench_sessions(self, ref: str) -> tuple[str, list[str]]:
        """The bench id (full, a unique prefix, or ``last``) and its sessions, oldest first."""
        self.require_sessions()
        with self.errors():
            # one session record per session, found through the sessions table's ids
            rows = self.conn.execute(
                "SELECT s.id, json_extract(r.json, '$.bench_id') FROM sessions s "
                "JOIN records r ON r.session_id = s.id AND r.kind = 'session' "
                "WHERE json_extract(r.json, '$.bench_id') IS NOT NULL "
                "ORDER BY s.started, s.id"
            ).fetchall()
        benches: dict[str, list[str]] = {}
        for sid, bench in rows:
            benches.setdefault(str(bench), []).append(str(sid))
        if not benches:
            raise NotFoundError(f"no bench sessions in {self.path}; run `lkmetrics bench "
                                "voice` (or bench llm) first.")
        if ref == "last":
            found = [list(benches)[-1]]
        else:
            found = [b for b in benches if b == ref] or [b for b in benches if b.startswith(ref)]
        if len(found) > 1:
            raise NotFoundError(f"bench {ref!r} is ambiguous in {self.path}; give more of it.")
        if not found:
            raise NotFoundError(f"no bench {ref!r} in {self.path}; `lkmetrics sessions` shows "
                                "each session's bench id.")
        return found[0], benches[found[0]]

    def figure_values(
        self, figure: Figure, scope: Scope, by: str | None = None
    ) -> dict[str, list[float]]:
        """The figure's values in scope, sorted, grouped by None, "session", "model" or "kind",
        read from the records' columns: a scan of the records. Reports read the digests
        (:meth:`figures`); this is what the tests hold them to."""
        col = FIGURE_COLUMNS.get(figure.name)
        if by == "tool" and figure.kind != "tool":
            return {}
        if by == "tool":
            by = "model"  # a tool record's model column holds its tool's name
        if col is None:
            return self._figure_values_from_json(figure, scope, by)
        where, params = scope.where()
        groups: dict[str, list[float]] = {}
        with self.errors():
            for sid, model, v in self.conn.execute(
                    f"SELECT session_id, model, {col} FROM records WHERE {col} IS NOT NULL"
                    f"{where}", params):
                key = {"session": sid, "model": model or "unknown", "kind": figure.kind}.get(
                    by or "", "all")
                groups.setdefault(key, []).append(v)
        for values in groups.values():
            values.sort()
        return groups

    def _figure_values_from_json(
        self, figure: Figure, scope: Scope, by: str | None
    ) -> dict[str, list[float]]:
        # a figure added to stats.FIGURES after this schema: read it from the JSON
        where, params = scope.where()
        groups: dict[str, list[float]] = {}
        with self.errors():
            cur = self.conn.execute(
                f"SELECT session_id, model, json FROM records WHERE kind = ?{where}",
                [figure.kind, *params],
            )
            for sid, model, text in cur:
                v = figure_value(figure, json.loads(text))
                if v is None:
                    continue
                key = {"session": sid, "model": model or "unknown", "kind": figure.kind}.get(
                    by or "", "all"
                )
                groups.setdefault(key, []).append(v)
        for values in groups.values():
            values.sort()
        return groups

    def digests(self, session_ids: Sequence[str] | None = None) -> dict[str, Digest]:
        """Each session's digest (record counts per kind, statistics of each stored figure),
        every session when ``session_ids`` is None; see :mod:`lkmetrics.store.digest`."""
        from lkmetrics.store import digest_values

        with self.errors():
            return digest_values.load(self.conn, session_ids)

    def window(self, scope: Scope) -> dict[str, Digest]:
        """Digests of the records in scope, by session (see
        :func:`lkmetrics.store.digest_values.window`): whole sessions' stored digests, and for a
        session that ``since`` cuts, one of its records since then."""
        from lkmetrics.store import digest_values

        with self.errors():
            return digest_values.window(self.conn, scope.session_ids, scope.since)

    def figures(self, figures: Sequence[Figure], scope: Scope, by: str | None = None,
                digests: Mapping[str, Digest] | None = None,
                ) -> dict[str, dict[str, list[float]]]:
        """:meth:`figure_values` of each figure (name -> group -> sorted values), read from
        the digests of :meth:`window` (``digests``: those, already loaded)."""
        from lkmetrics.store.digest import grouped_values

        if any(f.name not in FIGURE_COLUMNS for f in figures):
            return {f.name: self.figure_values(f, scope, by) for f in figures}
        if digests is None:
            digests = self.window(scope)
        return grouped_values(digests, figures, by)

    def last_usage(self, records: Mapping[str, Mapping[str, Any]],
                   ) -> Iterator[list[dict[str, Any]]]:
        """The ``usage`` list of each of these last usage records (session id -> record; usage
        is cumulative), each entry with its model ``identity`` in that session."""
        stages: dict[str, dict[str, str | None]] = {}
        with self.errors():
            ids = list(records)
            for chunk, marks in in_lists(ids):
                for sid, llm, stt, tts in self.conn.execute(
                        f"SELECT id, llm, stt, tts FROM sessions WHERE id IN ({marks})", chunk):
                    stages[str(sid)] = {"llm": llm, "stt": stt, "tts": tts}
        for sid, record in records.items():
            usage = record.get("usage")
            if isinstance(usage, list):
                names = stages.get(sid, {})
                yield [{**u, "identity": usage_identity(u, names)}
                       for u in usage if isinstance(u, dict)]

    def models(self, digests: Mapping[str, Digest] | None = None) -> list[str]:
        """Every model label the store knows: the sessions' models and those of the records
        that carry a figure or tokens (from the digests of every session: ``digests``, when
        the caller has them)."""
        with self.errors():
            found = {
                str(r[0]) for r in self.conn.execute(
                    "SELECT llm FROM sessions UNION SELECT stt FROM sessions "
                    "UNION SELECT tts FROM sessions"
                ) if r[0] is not None
            }
        for d in (self.digests() if digests is None else digests).values():
            found.update(m for _, m, _, _ in d.groups if m is not None)
            found.update(t[0] for t in d.tokens if t[0] is not None)
        return sorted(found)

    def session_ids_oldest_first(self) -> list[str]:
        with self.errors():
            return [
                str(r[0]) for r in self.conn.execute(
                    "SELECT id FROM sessions ORDER BY started, id"
                )
            ]
