"""Reads the records costs need from the store: sessions, usage, turns and user-side marks.

Only ``session`` and ``usage`` records are parsed; turns and the ``eou``/``stt`` marks that
close a turn's reply window need just their kind, seq and time. A session is costed whole
(its usage is cumulative); ``since`` keeps the turns recorded since then.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from lkmetrics.cost.compute import CostSummary, CostTracker
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
    marks = ",".join("?" * len(_KINDS))
    for sid in session_ids(store, scope):
        tracker = CostTracker(book, sid)
        with store.errors():
            rows = store.conn.execute(
                f"SELECT kind, seq, time, CASE WHEN kind IN ('session', 'usage') THEN json "
                f"END, CASE WHEN kind = 'turn' THEN json_extract(json, '$.turn') END "
                f"FROM records WHERE session_id = ? AND kind IN ({marks}) ORDER BY seq",
                (sid, *_KINDS)).fetchall()
            span = store.conn.execute(
                "SELECT min(time), max(time) FROM records WHERE session_id = ?", (sid,)
            ).fetchone()
        for kind, seq, t, text, turn in rows:
            record: dict[str, Any] = {"kind": kind, "seq": seq, "time": t, "turn": turn}
            if text is not None:
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
            tracker.add(record)
        for t in span:
            if t is not None:
                tracker.add({"kind": "_span", "time": t})
        cost = tracker.result()
        if scope.since is not None:
            times = {int(seq): t for kind, seq, t, *_ in rows if kind == "turn"}
            cost.turns = [c for c in cost.turns if (times.get(c.seq) or 0) >= scope.since]
        out.sessions.append(cost)
    return out


def model_session_values(summary: CostSummary, model: str) -> Sequence[float]:
    """The cost per session of one model (sessions where its price is known)."""
    return [m.cost for s in summary.sessions for m in s.models
            if m.model == model and m.cost is not None]
