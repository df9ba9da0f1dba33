"""Reads the records costs need from the store: sessions, usage, turns and user-side marks.

A session whose turn records carry their cost (this version records it, and the store keeps
each turn's total in the ``cost`` column) is costed from its opening record and its last
usage record (usage is cumulative), both kept in its digest, and its turns' costs come from
the digests like any other figure. Older sessions are costed
from every usage record, each delta going to its turn. A session is costed whole; ``since``
keeps the turns recorded since then.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lkmetrics.cost.compute import CostSummary, CostTracker, Parts, SessionCost, TurnCost
from lkmetrics.cost.prices import PriceBook
from lkmetrics.figures import COST_FIGURES_BY_NAME
from lkmetrics.store import Scope, Store
from lkmetrics.store.db import in_lists
from lkmetrics.store.digest import Digest

_KINDS = ("session", "usage", "turn", "eou", "stt")
TURN_COST = COST_FIGURES_BY_NAME["cost.turn"]


def summarise(store: Store, scope: Scope, book: PriceBook, *, by_session: bool = False,
              detail: bool = False, digests: Mapping[str, Digest] | None = None,
              reprice: bool = False) -> CostSummary:
    """The cost of every session with records in scope; ``by_session``: each session's turn
    costs apart too; ``detail``: each turn's cost parts (``SessionCost.turns``);
    ``digests``: :meth:`lkmetrics.store.Store.window` of the scope, when the caller has it.
    ``reprice``: every turn costs what its usage costs at ``book``'s prices, not what it was
    recorded at (for ``--prices FILE``)."""
    out = CostSummary()
    if digests is None:
        digests = store.window(scope)
    ids = sorted(digests)  # the sessions with records in scope
    old = set(ids) if reprice else _without_turn_costs(store, ids, scope)
    current = [sid for sid in ids if sid not in old]
    # a session is costed whole, from its opening and last usage records: its own digest
    whole = digests if scope.since is None else store.digests(current)
    turns = _turn_parts(store, current, scope) if detail else {}
    old_turns: dict[str, list[float]] = {}
    for sid in ids:
        if sid in old:
            cost = _from_every_record(store, sid, book)
            if scope.since is not None:
                cost.turns = _since(store, sid, cost.turns, scope.since)
            old_turns[sid] = [t.parts.total for t in cost.turns if t.parts.total is not None]
        else:
            tracker = CostTracker(book, sid)
            d = whole[sid]
            for record in (d.session, d.usage):
                if record is not None:
                    tracker.add(record)
            for t in d.span or ():
                tracker.add({"kind": "_span", "time": t})
            cost = tracker.result()
            cost.turns = turns.get(sid, [])
        out.sessions.append(cost)
    grouped = store.figures([TURN_COST], scope, "session" if by_session else None,
                            digests)[TURN_COST.name]
    if old:  # the column holds no cost for the turns of older sessions: theirs come from usage
        for sid in old:
            grouped.pop(sid, None)
        if by_session:
            grouped.update({sid: sorted(v) for sid, v in old_turns.items() if v})
        else:
            grouped["all"] = [*grouped.get("all", []), *(v for vs in old_turns.values()
                                                        for v in vs)]
    if by_session:
        out.session_turn_values = grouped
        out.turn_values = sorted(v for vs in grouped.values() for v in vs)
    else:
        out.turn_values = sorted(grouped.get("all", []))
    return out


def _without_turn_costs(store: Store, ids: Sequence[str], scope: Scope) -> set[str]:
    """Sessions with a turn record that carries no cost (recorded before costs were): the
    turn index covers the cost column, so only turns without one are read whole."""
    found: set[str] = set()
    sql = ("SELECT DISTINCT session_id FROM records WHERE kind = 'turn' AND cost IS NULL "
           "AND coalesce(json_type(json, '$.cost'), '') != 'object'")
    with store.errors():
        if scope.session_ids is None:
            found.update(str(r[0]) for r in store.conn.execute(sql))
            return found & set(ids)
        for chunk, marks in in_lists(ids):
            found.update(str(r[0]) for r in store.conn.execute(
                f"{sql} AND session_id IN ({marks})", chunk))
    return found


def _turn_parts(store: Store, ids: Sequence[str], scope: Scope) -> dict[str, list[TurnCost]]:
    """Each turn's recorded cost parts, in seq order, per session (``--format json``)."""
    out: dict[str, list[TurnCost]] = {}
    since = "" if scope.since is None else " AND time >= ?"
    extra: list[Any] = [] if scope.since is None else [scope.since]
    with store.errors():
        for chunk, marks in in_lists(ids):
            for sid, seq, turn, llm, stt, tts in store.conn.execute(
                    "SELECT session_id, seq, json_extract(json, '$.turn'), "
                    "json_extract(json, '$.cost.llm'), json_extract(json, '$.cost.stt'), "
                    "json_extract(json, '$.cost.tts') FROM records WHERE kind = 'turn' "
                    f"AND session_id IN ({marks}){since} "
                    "ORDER BY session_id, seq", [*chunk, *extra]):
                out.setdefault(str(sid), []).append(TurnCost(
                    int(seq), turn if isinstance(turn, int) else None,
                    Parts(_usd(llm), _usd(stt), _usd(tts))))
    return out


def _since(store: Store, sid: str, turns: list[TurnCost], since: float) -> list[TurnCost]:
    with store.errors():
        times = {int(seq): t for seq, t in store.conn.execute(
            "SELECT seq, time FROM records WHERE session_id = ? AND kind = 'turn'", (sid,))}
    return [c for c in turns if (times.get(c.seq) or 0) >= since]


def _span(store: Store, sid: str) -> tuple[Any, Any]:
    with store.errors():
        row = store.conn.execute(
            "SELECT min(time), max(time) FROM records WHERE session_id = ?", (sid,)).fetchone()
    return row[0], row[1]


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
