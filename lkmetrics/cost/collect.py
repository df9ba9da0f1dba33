"""Reads the records costs need from the store: sessions, usage, turns and user-side marks.

A session whose turn records carry their cost (this version records it) is costed from its last
usage record (usage is cumulative) and its turn records: a few rows per session. Older
sessions are costed from every usage record, each delta going to its turn. A session is costed
whole; ``since`` keeps the turns recorded since then.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from lkmetrics.cost.compute import CostSummary, CostTracker, Parts, SessionCost, TurnCost
from lkmetrics.cost.prices import PriceBook
from lkmetrics.store import Scope, Store

_KINDS = ("session", "usage", "turn", "eou", "stt")


def session_ids(store: Store, scope: Scope) -> list[str]:
    where, params = scope.where()
    with store.errors():
        return [str(r[0]) for r in store.conn.execute(
            f"SELECT DISTINCT session_id FROM records WHERE 1 = 1{where} ORDER BY session_id",
            params)]


def summarise(store: Store, scope: Scope, book: PriceBook) -> CostSummary:
    """The cost of every session with records in scope."""
    out = CostSummary()
    for sid in session_ids(store, scope):
        cost = _from_turn_records(store, sid, book) or _from_every_record(store, sid, book)
        if scope.since is not None:
            with store.errors():
                times = {int(seq): t for seq, t in store.conn.execute(
                    "SELECT seq, time FROM records WHERE session_id = ? AND kind = 'turn'",
                    (sid,))}
            cost.turns = [c for c in cost.turns if (times.get(c.seq) or 0) >= scope.since]
        out.sessions.append(cost)
    return out


def _span(store: Store, sid: str) -> tuple[Any, Any]:
    with store.errors():
        row = store.conn.execute(
            "SELECT min(time), max(time) FROM records WHERE session_id = ?", (sid,)).fetchone()
    return row[0], row[1]


def _from_turn_records(store: Store, sid: str, book: PriceBook) -> SessionCost | None:
    """The fast way, for sessions whose turn records carry their cost (recorded by this
    version): the session's cost from its last (cumulative) usage record, each turn's from
    its record. None when a turn has no cost: then every record is read."""
    with store.errors():
        turns = store.conn.execute(
            "SELECT seq, json_extract(json, '$.turn'), json_type(json, '$.cost'), "
            "json_extract(json, '$.cost.llm'), json_extract(json, '$.cost.stt'), "
            "json_extract(json, '$.cost.tts') "
            "FROM records WHERE session_id = ? AND kind = 'turn' ORDER BY seq", (sid,)
        ).fetchall()
        if any(kind != "object" for _, _, kind, *_ in turns):
            return None
        heads = store.conn.execute(
            "SELECT json FROM records WHERE session_id = ? AND kind = 'session' "
            "UNION ALL SELECT * FROM (SELECT json FROM records WHERE session_id = ? "
            "AND kind = 'usage' ORDER BY seq DESC LIMIT 1)", (sid, sid)).fetchall()
    tracker = CostTracker(book, sid)
    for (text,) in heads:
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if isinstance(record, dict):
            tracker.add(record)
    for t in _span(store, sid):
        if t is not None:
            tracker.add({"kind": "_span", "time": t})
    result = tracker.result()
    result.turns = [TurnCost(int(seq), turn if isinstance(turn, int) else None,
                             Parts(_usd(llm), _usd(stt), _usd(tts)))
                    for seq, turn, _, llm, stt, tts in turns]
    return result


def _usd(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _from_every_record(store: Store, sid: str, book: PriceBook) -> SessionCost:
    """Every session, turn and usage record in order: usage deltas go to their turn."""
    marks = ",".join("?" * len(_KINDS))
    tracker = CostTracker(book, sid)
    with store.errors():
        rows = store.conn.execute(
            f"SELECT kind, seq, time, CASE WHEN kind IN ('session', 'usage') THEN json "
            f"END, CASE WHEN kind = 'turn' THEN json_extract(json, '$.turn') END "
            f"FROM records WHERE session_id = ? AND kind IN ({marks}) ORDER BY seq",
            (sid, *_KINDS)).fetchall()
    for kind, seq, t, text, turn in rows:
        record: dict[str, Any] = {"kind": kind, "seq": seq, "time": t, "turn": turn}
        if text is not None:
            try:
                record = json.loads(text)
            except ValueError:
                continue
        tracker.add(record)
    for t in _span(store, sid):
        if t is not None:
            tracker.add({"kind": "_span", "time": t})
    return tracker.result()


def model_session_values(summary: CostSummary, model: str) -> Sequence[float]:
    """The cost per session of one model (sessions where its price is known)."""
    return [m.cost for s in summary.sessions for m in s.models
            if m.model == model and m.cost is not None]
