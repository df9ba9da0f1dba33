"""Reports over the store: what a selection covers, its figures and its sessions.

Statistics come from :mod:`lkmetrics.figures` (one percentile definition everywhere:
linear interpolation between the two nearest ranks, ``numpy.percentile``'s default). Nothing
here prints; :mod:`lkmetrics.render.tables` turns the results into tables, JSON or CSV.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lkmetrics.errors import NotFoundError, UsageError
from lkmetrics.figures import (
    COST_FIGURES,
    FIGURES,
    Figure,
    describe,
    shown_only_if_measured,
)
from lkmetrics.records import usage_identity
from lkmetrics.store import Scope, SessionRow, Store

if TYPE_CHECKING:
    from lkmetrics.cost.compute import CostSummary
    from lkmetrics.cost.prices import PriceBook
    from lkmetrics.store.digest import Digest

GROUPINGS = ("model", "session", "kind", "tool")

Stats = dict[str, float | int | None]


# -- scope ------------------------------------------------------------------------------------

_SINCE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """A start time from ``90m``, ``1h``, ``1d``, ``2w``, or a date/time (``2025-11-27``,
    ``2025-11-27T14:00``; local time unless it carries an offset)."""
    m = _SINCE_RE.match(text)
    if m:
        now = time.time() if now is None else now
        # a duration beyond any float reaches back forever: everything (-inf)
        return now - float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"--since expects a duration like 30m, 1h, 1d, 2w or a date like 2025-11-27 "
            f"(got {text!r})."
        ) from None


def _date(t: float) -> str:
    try:
        return datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")
    except (OverflowError, OSError, ValueError):  # before year 1: since the beginning
        return "the beginning"


@dataclass(frozen=True)
class Selection:
    """What a report covers: the scope to query and a description of it for people."""

    scope: Scope
    description: str


def select(store: Store, session: str | None, since: str | None,
           bench: str | None = None, agent: str | None = None, *,
           include_bench: bool = False) -> Selection:
    """The records of SESSION (an id, a prefix, or ``last``; None: every session but the
    benchmarks', unless ``include_bench``), or of the sessions of BENCH (a bench id, a prefix,
    or ``last``), since; with AGENT, only the sessions of that user agent (``--agent``) among
    them."""
    selection = _select(store, session, since, bench, include_bench)
    if agent is None:
        return selection
    from lkmetrics.store.agents import agent_sessions

    members = agent_sessions(store, agent)
    scope = selection.scope
    ids = tuple(m for m in members if scope.session_ids is None or m in scope.session_ids)
    if not ids:
        raise NotFoundError(f"agent {agent!r} has no session in {selection.description}.")
    return Selection(Scope(ids, scope.since), f"{selection.description}, agent {agent}")


def is_bench(command: str | None) -> bool:
    """A session of ``bench llm`` or ``bench voice`` (reported apart from agent sessions)."""
    return (command or "").startswith("bench")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def describe_sessions(rows: Sequence[SessionRow], start: float | None) -> str:
    """``12 sessions (simulate 10, console 2), 2025-11-27 14:00 to 2025-12-05 18:02``: how many
    sessions, of which commands, over which time span (those with records since ``start``)."""
    commands: dict[str, int] = {}
    for r in rows:
        commands[r.command or "unknown"] = commands.get(r.command or "unknown", 0) + 1
    kinds = ", ".join(f"{c} {n}" for c, n in sorted(commands.items(), key=lambda x: -x[1]))
    times = [t for r in rows for t in (r.started, r.ended) if t is not None]
    span = ""
    if times:
        first = max(min(times), start) if start is not None else min(times)
        span = f", {_date(first)[:16]} to {_date(max(times))[:16]}"
    return f"{_plural(len(rows), 'session')} ({kinds}){span}" if rows else "no sessions"


def _all_sessions(store: Store, start: float | None,
                  include_bench: bool) -> tuple[tuple[str, ...] | None, str]:
    """Every session (None) or every agent session, and the words that say which."""
    rows = [r for r in store.sessions()
            if start is None or r.ended is None or r.ended >= start]
    bench = [r for r in rows if is_bench(r.command)]
    since = "" if start is None else f" since {_date(start)}"
    if include_bench or not bench:
        return None, describe_sessions(rows, start) + since
    kept = [r for r in rows if not is_bench(r.command)]
    if not kept:
        raise NotFoundError(f"only benchmark sessions ({len(bench)}) are in scope: add "
                            "--include-bench, or --bench ID|last for one run.")
    return (tuple(r.id for r in kept),
            f"{describe_sessions(kept, start)}{since}; {_plural(len(bench), 'bench session')} "
            "left out (--include-bench)")


def _select(store: Store, session: str | None, since: str | None,
            bench: str | None = None, include_bench: bool = False) -> Selection:
    store.require_sessions()
    start = parse_since(since) if since else None
    ids: tuple[str, ...] | None
    if bench is not None:
        if session is not None:
            raise UsageError("give a SESSION or --bench, not both.")
        bench_id, members = store.bench_sessions(bench)
        desc = f"bench {bench_id} ({len(members)} session{'s' if len(members) != 1 else ''})"
        ids = tuple(members)
    elif session is None:
        ids, desc = _all_sessions(store, start, include_bench)
        return Selection(Scope(ids, start), desc)
    else:
        sid = store.resolve_session(session)
        desc = f"session {sid} ({store.session(sid).exit_status or 'status unknown'})"
        ids = (sid,)
    if start is not None:
        desc += f" since {_date(start)}"
    return Selection(Scope(ids, start), desc)


def statuses(store: Store, selection: Selection) -> dict[str, str | None]:
    """The exit status of each session the selection covers (None: still running)."""
    ids = selection.scope.session_ids
    rows = store.sessions() if ids is None else [store.session(sid) for sid in ids]
    start = selection.scope.since
    return {r.id: r.exit_status for r in rows
            if start is None or r.ended is None or r.ended >= start}


# -- report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureRow:
    group: str
    figure: Figure
    stats: Stats


@dataclass(frozen=True)
class TokenRow:
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class Report:
    description: str
    by: str | None
    rows: list[FigureRow]
    tokens: list[TokenRow] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    cost: CostSummary | None = None

    def row(self, figure: str, group: str | None = None) -> FigureRow | None:
        for r in self.rows:
            if r.figure.name == figure and (group is None or r.group == group):
                return r
        return None


def build_rows(values: Mapping[str, Mapping[str, Sequence[float]]], by: str | None
               ) -> list[FigureRow]:
    """One row per (group, figure) from figure name -> group -> values.

    Without grouping every figure gets a row, with count 0 when it has no values.
    """
    rows: list[FigureRow] = []
    if by is None:
        for figure in FIGURES:
            vals = values.get(figure.name, {}).get("all", [])
            if not vals and shown_only_if_measured(figure):
                continue
            rows.append(FigureRow("all", figure, describe(vals)))
        return rows
    groups: list[str] = []
    for per_group in values.values():
        for g in per_group:
            if g not in groups:
                groups.append(g)
    if by == "kind":
        order = [f.kind for f in FIGURES]
        groups.sort(key=lambda g: order.index(g) if g in order else len(order))
    else:
        groups.sort()
    for g in groups:
        for figure in FIGURES:
            group_values = values.get(figure.name, {}).get(g)
            if group_values:
                rows.append(FigureRow(g, figure, describe(group_values)))
    return rows


_USAGE_KEYS = ("type", "provider", "model", "identity")


def usage_by_model(usages: Iterable[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Sum LiveKit model-usage dumps (one list per session) per usage type and model."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for usage in usages:
        for entry in usage:
            label = str(entry.get("identity") or usage_identity(entry))
            kind = str(entry.get("type") or "usage")
            acc = totals.setdefault((kind, label), {"type": kind, "model": label, "sessions": 0})
            acc["sessions"] += 1
            for k, v in entry.items():
                if k in _USAGE_KEYS or isinstance(v, bool) or not isinstance(v, int | float):
                    continue
                acc[k] = acc.get(k, 0) + v
    out = []
    for key in sorted(totals):
        acc = totals[key]
        out.append({k: v for k, v in acc.items() if k in ("type", "model", "sessions") or v})
    return out


def cost_rows(cost: CostSummary, by: str | None) -> list[FigureRow]:
    """cost.turn and cost.session over everything, or per session (``--by session``)."""
    turn, session = COST_FIGURES
    if by is None:
        return [FigureRow("all", turn, describe(cost.turn_values)),
                FigureRow("all", session, describe(cost.session_values))]
    if by != "session":
        return []
    rows = []
    for s in sorted(cost.sessions, key=lambda s: s.session_id):
        turns = cost.session_turn_values.get(s.session_id)
        if turns:
            rows.append(FigureRow(s.session_id, turn, describe(turns)))
        if s.parts.total is not None:
            rows.append(FigureRow(s.session_id, session, describe([s.parts.total])))
    return rows


def digest_rows(digests: Mapping[str, Digest]) -> list[FigureRow]:
    """``build_rows(values, "session")`` from the sessions' digests (the same statistics,
    computed when the session was written)."""
    rows = []
    for sid in sorted(digests):
        figures = digests[sid].figures
        for figure in FIGURES:
            stats = figures.get(figure.name)
            if stats and stats.get("count"):
                rows.append(FigureRow(sid, figure, stats))
    return rows


def summarise(store: Store, selection: Selection, by: str | None = None,
              prices: PriceBook | None = None, *, detail: bool = False,
              reprice: bool = False) -> Report:
    """Every figure's count, mean, p50, p90, p95, p99 and max; tokens and usage per model;
    with ``prices``, the cost per turn, per session and per model (``detail``: each turn's
    cost parts too, as ``--format json`` shows them; ``reprice``: turns priced from their
    usage at ``prices``, not at what they were recorded at)."""
    if by is not None and by not in GROUPINGS:
        raise UsageError(f"--by expects one of {', '.join(GROUPINGS)} (got {by!r}).")
    scope = selection.scope
    from lkmetrics.store.digest import kind_totals, token_totals

    # a digest per session with records in scope: each figure's values, tokens, usage
    digests = store.window(scope)
    if scope.since is not None and not digests:
        raise NotFoundError(f"no records in {selection.description}; widen --since.")
    if by == "session" and scope.since is None:
        rows = digest_rows(digests)  # their statistics, computed when they were stored
    else:
        rows = build_rows(store.figures(FIGURES, scope, by, digests), by)
    tokens = [TokenRow(*t) for t in token_totals(digests.values())]
    last_usage = {sid: d.usage for sid, d in digests.items() if d.usage is not None}
    usage = usage_by_model(store.last_usage(last_usage))
    kinds = kind_totals(digests.values()) if by == "kind" else {}
    cost = None
    if prices is not None:
        from lkmetrics.analysis import costs as collect

        cost = collect.summarise(store, scope, prices, by_session=by == "session",
                                 detail=detail, digests=digests, reprice=reprice)
        rows += cost_rows(cost, by)
    return Report(selection.description, by, rows, tokens, usage, kinds, cost)


# -- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionOverview:
    session: SessionRow
    turns: int
    p50_e2e: float | None
    bench_id: str | None = None
    agent: str | None = None  # --agent: the user's agent, module:NAME


def overview(store: Store, limit: int | None) -> list[SessionOverview]:
    """Sessions newest first, with their turn count and median turn latency."""
    store.require_sessions()
    rows = store.sessions(limit)
    digests = store.digests([r.id for r in rows])
    benches = store.bench_ids([r.id for r in rows if r.command and r.command.startswith("bench")])
    from lkmetrics.store.agents import agent_labels

    agents = agent_labels(store, [r.id for r in rows])
    out = []
    for r in rows:
        d = digests.get(r.id)
        p50 = (d.figures.get("e2e") or {}).get("p50") if d is not None else None
        out.append(SessionOverview(r, d.kinds.get("turn", 0) if d is not None else 0,
                                   float(p50) if p50 is not None else None,
                                   benches.get(r.id), agents.get(r.id)))
    return out
