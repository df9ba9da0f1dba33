"""Summaries, comparisons and latency budgets over the store: data in, plain data out.

Statistics come from :mod:`lkmetrics.stats` (one percentile definition everywhere: linear
interpolation between the two nearest ranks, ``numpy.percentile``'s default). Nothing here
prints; :mod:`lkmetrics.render_report` turns the results into tables, JSON or CSV.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lkmetrics.errors import LkmetricsError, NotFoundError, UsageError
from lkmetrics.stats import (
    COST_FIGURES,
    COST_FIGURES_BY_NAME,
    COST_MODEL,
    FIGURES,
    FIGURES_BY_NAME,
    Figure,
    describe,
)
from lkmetrics.store import Scope, SessionRow, Store

if TYPE_CHECKING:
    from lkmetrics.cost.compute import CostSummary
    from lkmetrics.cost.prices import PriceBook

PERCENTILE_HELP = (
    "Percentiles interpolate linearly between the two nearest ranks of the sorted values "
    "(rank = (n - 1) * p / 100; numpy.percentile's default, Excel's PERCENTILE.INC)."
)

GROUPINGS = ("model", "session", "kind")
BUDGET_STATS = ("mean", "p50", "p90", "p95", "p99", "max")

Stats = dict[str, float | int | None]


def fmt_value(value: float | None, unit: str) -> str:
    """A value for people: ``312 ms``, ``1.24 s``, ``33.9 tok/s``; ``-`` when missing."""
    if value is None:
        return "-"
    if unit == "s":
        if abs(value) < 1:
            ms = value * 1000
            return f"{ms:.1f} ms" if abs(ms) < 10 else f"{ms:.0f} ms"
        return f"{value:.2f} s"
    if unit == "tok/s":
        return f"{value:.1f} tok/s"
    if unit == "USD":
        return f"${value:.5f}" if abs(value) < 0.1 else f"${value:.4f}"
    return f"{value:g} {unit}".strip()


# -- scope ------------------------------------------------------------------------------------

_SINCE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """A start time from ``90m``, ``1h``, ``1d``, ``2w``, or a date/time (``2025-11-27``,
    ``2025-11-27T14:00``; local time unless it carries an offset)."""
    m = _SINCE_RE.match(text)
    if m:
        now = time.time() if now is None else now
        return now - float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(
            f"--since expects a duration like 30m, 1h, 1d, 2w or a date like 2025-11-27 "
            f"(got {text!r})."
        ) from None


@dataclass(frozen=True)
class Selection:
    """What a report covers: the scope to query and a description of it for people."""

    scope: Scope
    description: str


def select(store: Store, session: str | None, since: str | None) -> Selection:
    """The records of SESSION (an id, a prefix, or ``last``; None: every session), since."""
    store.require_sessions()
    start = parse_since(since) if since else None
    if session is None:
        desc = "all sessions"
        ids = None
    else:
        sid = store.resolve_session(session)
        desc = f"session {sid}"
        ids = (sid,)
    if start is not None:
        desc += f" since {datetime.fromtimestamp(start).isoformat(sep=' ', timespec='seconds')}"
    return Selection(Scope(ids, start), desc)


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


_USAGE_KEYS = ("type", "provider", "model")


def usage_by_model(usages: Iterable[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Sum LiveKit model-usage dumps (one list per session) per usage type and model."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for usage in usages:
        for entry in usage:
            provider = str(entry.get("provider") or "")
            model = str(entry.get("model") or "")
            label = f"{provider}/{model}" if provider and model else (model or provider or "?")
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
        turns = [t.parts.total for t in s.turns if t.parts.total is not None]
        if turns:
            rows.append(FigureRow(s.session_id, turn, describe(turns)))
        if s.parts.total is not None:
            rows.append(FigureRow(s.session_id, session, describe([s.parts.total])))
    return rows


def summarise(store: Store, selection: Selection, by: str | None = None,
              prices: PriceBook | None = None) -> Report:
    """Every figure's count, mean, p50, p90, p95, p99 and max; tokens and usage per model;
    with ``prices``, the cost per turn, per session and per model."""
    if by is not None and by not in GROUPINGS:
        raise UsageError(f"--by expects one of {', '.join(GROUPINGS)} (got {by!r}).")
    scope = selection.scope
    values = {f.name: store.figure_values(f, scope, by) for f in FIGURES}
    tokens = [TokenRow(*t) for t in store.token_totals(scope)]
    usage = usage_by_model(store.last_usage(scope))
    kinds = store.kind_counts(scope) if by == "kind" else {}
    if (scope.since is not None and not any(values.values()) and not tokens
            and not store.kind_counts(scope)):
        raise NotFoundError(f"no records in {selection.description}; widen --since.")
    rows = build_rows(values, by)
    cost = None
    if prices is not None:
        from lkmetrics.cost import collect

        cost = collect.summarise(store, scope, prices)
        rows += cost_rows(cost, by)
    return Report(selection.description, by, rows, tokens, usage, kinds, cost)


# -- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionOverview:
    session: SessionRow
    turns: int
    p50_e2e: float | None


def overview(store: Store, limit: int | None) -> list[SessionOverview]:
    """Sessions newest first, with their turn count and median turn latency."""
    store.require_sessions()
    rows = store.sessions(limit)
    turns = store.session_turns([r.id for r in rows])
    out = []
    for r in rows:
        n, e2e = turns.get(r.id, (0, []))
        out.append(SessionOverview(r, n, describe(e2e)["p50"] if e2e else None))
    return out


# -- compare ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparedStat:
    a: float | None
    b: float | None

    @property
    def diff(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return self.b / self.a


@dataclass(frozen=True)
class ComparedFigure:
    figure: Figure
    count_a: int
    count_b: int
    p50: ComparedStat
    p95: ComparedStat

    @property
    def verdict(self) -> str | None:
        """``faster``, ``slower`` or ``same`` for B against A (by p50, then p95); None: no data.

        Lower is faster for times; higher is faster for rates (tok/s); for costs (USD) the
        words are ``cheaper`` and ``costlier``.
        """
        for stat in (self.p50, self.p95):
            if stat.a is None or stat.b is None:
                return None
            if math.isclose(stat.a, stat.b, rel_tol=1e-9, abs_tol=1e-12):
                continue
            better = stat.b < stat.a if self.figure.unit in ("s", "USD") else stat.b > stat.a
            if self.figure.unit == "USD":
                return "cheaper" if better else "costlier"
            return "faster" if better else "slower"
        return "same"


@dataclass
class Comparison:
    by: str
    a: str
    b: str
    figures: list[ComparedFigure]


def compare_values(
    a_values: Mapping[str, Sequence[float]], b_values: Mapping[str, Sequence[float]],
    extra: Sequence[Figure] = (),
) -> list[ComparedFigure]:
    """p50 and p95 of each figure (and of the ``extra`` ones) for A and B (figure name ->
    values)."""
    out = []
    for figure in (*FIGURES, *extra):
        sa = describe(a_values.get(figure.name, []))
        sb = describe(b_values.get(figure.name, []))
        out.append(ComparedFigure(
            figure, int(sa["count"] or 0), int(sb["count"] or 0),
            ComparedStat(_num(sa["p50"]), _num(sb["p50"])),
            ComparedStat(_num(sa["p95"]), _num(sb["p95"])),
        ))
    return out


def _num(v: float | int | None) -> float | None:
    return None if v is None else float(v)


def resolve_model(store: Store, name: str) -> str:
    """A model label from its full ``provider/model`` or an unambiguous model name."""
    known = store.models()
    if name in known:
        return name
    matches = [m for m in known if m.rsplit("/", 1)[-1] == name or m.endswith("/" + name)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    if matches:
        raise NotFoundError(f"model {name!r} is ambiguous: {', '.join(matches)}; give one.")
    raise NotFoundError(f"no model {name!r} in {store.path}; known models: {shown or 'none'}.")


def compare(store: Store, a: str, b: str, by: str = "session",
            prices: PriceBook | None = None) -> Comparison:
    """Two sessions (ids, prefixes or ``last``) or two models (``by="model"``) side by side;
    with ``prices``, their cost per turn and per session (per model: the model's own cost
    per session)."""
    store.require_sessions()
    if by == "session":
        ka, kb = store.resolve_session(a), store.resolve_session(b)
        scopes = (Scope((ka,)), Scope((kb,)))
        va = {f.name: store.figure_values(f, scopes[0]).get("all", []) for f in FIGURES}
        vb = {f.name: store.figure_values(f, scopes[1]).get("all", []) for f in FIGURES}
        extra: tuple[Figure, ...] = COST_FIGURES if prices is not None else ()
        if prices is not None:
            from lkmetrics.cost import collect

            for values, scope in ((va, scopes[0]), (vb, scopes[1])):
                cost = collect.summarise(store, scope, prices)
                values["cost.turn"] = cost.turn_values
                values["cost.session"] = cost.session_values
    elif by == "model":
        ka, kb = resolve_model(store, a), resolve_model(store, b)
        grouped = {f.name: store.figure_values(f, Scope(), "model") for f in FIGURES}
        va = {name: g.get(ka, []) for name, g in grouped.items()}
        vb = {name: g.get(kb, []) for name, g in grouped.items()}
        extra = (COST_MODEL,) if prices is not None else ()
        if prices is not None:
            from lkmetrics.cost import collect

            cost = collect.summarise(store, Scope(), prices)
            va[COST_MODEL.name] = list(collect.model_session_values(cost, ka))
            vb[COST_MODEL.name] = list(collect.model_session_values(cost, kb))
    else:
        raise UsageError(f"compare --by expects session or model (got {by!r}).")
    return Comparison(by, ka, kb, compare_values(va, vb, extra))


# -- budgets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """``FIGURE.STAT=LIMIT``: fail when the stat of the figure is over the limit."""

    spec: str
    figure: Figure
    stat: str
    limit: float  # in the figure's unit (seconds, tok/s or USD)


@dataclass(frozen=True)
class BudgetResult:
    budget: Budget
    group: str
    value: float | None  # None: the figure has no values here, not checked
    unknown: tuple[str, ...] = ()  # a cost budget: models without a price (broken: unknown)

    @property
    def broken(self) -> bool:
        if self.unknown:
            return True
        return self.value is not None and self.value > self.budget.limit


class BudgetExceeded(LkmetricsError):
    """One or more latency budgets are broken (exit code 1); the message names each."""

    exit_code = 1


_BUDGET_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9_.]+)\.(?P<stat>[a-z0-9]+)\s*=\s*"
    r"(?P<dollar>\$)?(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|tok/s|USD)?$"
)


def parse_budget(spec: str) -> Budget:
    """Parse ``e2e.p95=1.2s``, ``llm.ttft.p50=500ms``, ``llm.decode_rate.p50=40tok/s``,
    ``cost.turn.p95=0.002`` (USD; ``$0.002`` and ``0.002USD`` too)."""
    example = "e.g. --fail-over e2e.p95=1.2s or --fail-over llm.ttft.p50=500ms"
    m = _BUDGET_RE.match(spec.strip())
    if not m:
        raise UsageError(f"--fail-over expects FIGURE.STAT=LIMIT, {example} (got {spec!r}).")
    name, stat, unit = m.group("name"), m.group("stat"), m.group("unit")
    figure = FIGURES_BY_NAME.get(name) or COST_FIGURES_BY_NAME.get(name)
    if figure is None:
        names = ", ".join(f.name for f in (*FIGURES, *COST_FIGURES))
        raise UsageError(f"--fail-over: unknown figure {name!r} in {spec!r}; one of {names}.")
    if stat not in BUDGET_STATS:
        raise UsageError(
            f"--fail-over: unknown statistic {stat!r} in {spec!r}; one of "
            f"{', '.join(BUDGET_STATS)}."
        )
    limit = float(m.group("num"))
    if figure.unit == "USD":
        if unit not in (None, "USD"):
            raise UsageError(f"--fail-over: {name} is a cost in USD, e.g. {name}.p95=0.002 "
                             f"(got {spec!r}).")
        return Budget(spec.strip(), figure, stat, limit)
    if m.group("dollar") or unit == "USD":
        raise UsageError(f"--fail-over: {name} is not a cost (got {spec!r}).")
    if figure.unit == "s":
        if unit == "tok/s":
            raise UsageError(f"--fail-over: {name} is a time; give ms or s (got {spec!r}).")
        if unit == "ms":
            limit /= 1000
    elif unit in ("ms", "s"):
        raise UsageError(f"--fail-over: {name} is a rate in tok/s (got {spec!r}).")
    return Budget(spec.strip(), figure, stat, limit)


def check_budgets(report: Report, budgets: Sequence[Budget]) -> list[BudgetResult]:
    """Each budget against each group of the report that has the figure."""
    results: list[BudgetResult] = []
    for budget in budgets:
        if budget.figure.unit == "USD" and report.cost is not None and report.cost.unknown:
            results.append(BudgetResult(budget, "all", None, tuple(report.cost.unknown)))
            continue
        rows = [r for r in report.rows if r.figure.name == budget.figure.name]
        if not rows:
            results.append(BudgetResult(budget, "all", None))
        for r in rows:
            value = r.stats.get(budget.stat)
            results.append(BudgetResult(budget, r.group, None if value is None else float(value)))
    return results


def fail_on_broken(results: Sequence[BudgetResult]) -> None:
    """Raise BudgetExceeded naming every broken budget, if any is broken."""
    broken = [r for r in results if r.broken]
    if not broken:
        return
    parts = []
    for r in broken:
        unit = r.budget.figure.unit
        where = "" if r.group == "all" else f" ({r.group})"
        if r.unknown:
            parts.append(f"{r.budget.figure.name}.{r.budget.stat} is unknown: no price for "
                         f"{', '.join(r.unknown)} (add one with --prices FILE)")
            continue
        parts.append(
            f"{r.budget.figure.name}.{r.budget.stat} = {fmt_value(r.value, unit)} > "
            f"{fmt_value(r.budget.limit, unit)}{where}"
        )
    noun = "budget" if len(broken) == 1 else "budgets"
    raise BudgetExceeded(f"{len(broken)} {noun} broken: " + "; ".join(parts) + ".")
