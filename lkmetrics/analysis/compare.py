"""Comparisons: two sessions or two models side by side, p50 and p95 of every figure (and
cost), with a verdict per figure. Nothing here prints; :mod:`lkmetrics.render.tables` does."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lkmetrics.errors import NotFoundError, UsageError
from lkmetrics.figures import COST_FIGURES, COST_MODEL, FIGURES, Figure, describe
from lkmetrics.store import Scope, Store

if TYPE_CHECKING:
    from lkmetrics.cost.prices import PriceBook


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


def resolve_model(store: Store, name: str, known: Sequence[str] | None = None) -> str:
    """A model label from its full ``provider/model`` or an unambiguous model name
    (``known``: :meth:`lkmetrics.store.Store.models`, when the caller has it)."""
    known = store.models() if known is None else known
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
            prices: PriceBook | None = None, *, reprice: bool = False) -> Comparison:
    """Two sessions (ids, prefixes or ``last``) or two models (``by="model"``) side by side;
    with ``prices``, their cost per turn and per session (per model: the model's own cost
    per session)."""
    store.require_sessions()
    if by == "session":
        ka, kb = store.resolve_session(a), store.resolve_session(b)
        scopes = (Scope((ka,)), Scope((kb,)))
        windows = [store.window(scope) for scope in scopes]  # for the figures and the costs
        va, vb = ({name: g.get("all", []) for name, g in grouped.items()}
                  for grouped in (store.figures(FIGURES, scope, None, window)
                                  for scope, window in zip(scopes, windows, strict=True)))
        extra: tuple[Figure, ...] = COST_FIGURES if prices is not None else ()
        if prices is not None:
            from lkmetrics.analysis import costs as collect

            for values, scope, window in zip((va, vb), scopes, windows, strict=True):
                cost = collect.summarise(store, scope, prices, digests=window,
                                         reprice=reprice)
                values["cost.turn"] = cost.turn_values
                values["cost.session"] = cost.session_values
    elif by == "model":
        digests = store.window(Scope())  # read once for the models, figures and costs
        known = store.models(digests)
        ka, kb = resolve_model(store, a, known), resolve_model(store, b, known)
        grouped = store.figures(FIGURES, Scope(), "model", digests)
        va = {name: g.get(ka, []) for name, g in grouped.items()}
        vb = {name: g.get(kb, []) for name, g in grouped.items()}
        extra = (COST_MODEL,) if prices is not None else ()
        if prices is not None:
            from lkmetrics.analysis import costs as collect

            cost = collect.summarise(store, Scope(), prices, digests=digests, reprice=reprice)
            va[COST_MODEL.name] = list(collect.model_session_values(cost, ka))
            vb[COST_MODEL.name] = list(collect.model_session_values(cost, kb))
    else:
        raise UsageError(f"compare --by expects session or model (got {by!r}).")
    return Comparison(by, ka, kb, compare_values(va, vb, extra))
