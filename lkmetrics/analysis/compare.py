"""Comparisons: two sessions or two models side by side, p50 and p95 of every figure (and
cost), with a verdict per figure. Nothing here prints; :mod:`lkmetrics.render.tables` does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lkmetrics.errors import NotFoundError, UsageError
from lkmetrics.figures import (
    COST_FIGURES,
    COST_MODEL,
    FIGURES,
    Figure,
    percentile,
    percentile_rows,
    shown_only_if_measured,
)
from lkmetrics.store import Scope, Store

if TYPE_CHECKING:
    from lkmetrics.cost.prices import PriceBook


# A verdict needs enough samples on each side (MIN_SAMPLES; MIN_TAIL_SAMPLES for p95, whose
# estimate from fewer is little more than the maximum) and a 95% bootstrap interval of the
# difference that lies wholly beyond a difference worth naming (EFFECT of A's value, and
# MIN_TIME for times): otherwise it is "unclear". See the README's compare section for why.
MIN_SAMPLES = 5
MIN_TAIL_SAMPLES = 20
EFFECT = 0.05
MIN_TIME = 0.001  # s
RESAMPLES = 400
MAX_BOOTSTRAP = 1000  # values per side used to resample (evenly spaced in sorted order)


@dataclass(frozen=True)
class ComparedStat:
    a: float | None
    b: float | None
    ci: tuple[float, float] | None = None  # 95% bootstrap interval of b - a
    verdict: str = "unclear"  # for B against A: better, worse or unclear

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
    def verdict(self) -> str:
        """``better``, ``worse`` or ``unclear`` for B against A: the verdict of p50 and p95
        where those that are clear agree; unclear when neither is, or they disagree.

        Lower is better for times and costs; higher for rates (tok/s)."""
        return agree([self.p50.verdict, self.p95.verdict])


def agree(verdicts: Sequence[str]) -> str:
    """The one clear verdict among ``verdicts`` if every clear one says it; else unclear."""
    clear = {v for v in verdicts if v != "unclear"}
    return clear.pop() if len(clear) == 1 else "unclear"


@dataclass
class Comparison:
    by: str
    a: str
    b: str
    figures: list[ComparedFigure]
    a_label: str = ""  # models (and agent) of A, for people
    b_label: str = ""
    agents: dict[str, str] = field(default_factory=dict)  # session -> its --agent module:NAME

    @property
    def verdict(self) -> str:
        """Overall: better or worse only when every figure with a clear verdict agrees."""
        return agree([f.verdict for f in self.figures])


def _resamples(values: Sequence[float], rng: Any) -> tuple[Any, Any]:
    """The sorted values, and RESAMPLES bootstrap resamples of them (one per row) drawn
    from at most MAX_BOOTSTRAP of them (evenly spaced in sorted order: the interval of so
    many is narrow, and the shape is kept)."""
    import numpy as np

    arr = np.sort(np.asarray(values, dtype=float))
    base = arr
    if len(base) > MAX_BOOTSTRAP:
        base = base[np.linspace(0, len(base) - 1, MAX_BOOTSTRAP).astype(int)]
    return arr, base[rng.integers(0, len(base), (RESAMPLES, len(base)))]


def compared_figure(figure: Figure, a: Sequence[float], b: Sequence[float]) -> ComparedFigure:
    """p50 and p95 of A and B, the bootstrap interval of each difference, and the verdicts
    (a seeded bootstrap: the same data always gives the same verdict)."""
    import numpy as np

    if not a or not b:
        def only(values: Sequence[float], q: float) -> float | None:
            return percentile(sorted(values), q) if values else None

        return ComparedFigure(figure, len(a), len(b),
                              ComparedStat(only(a, 50), only(b, 50)),
                              ComparedStat(only(a, 95), only(b, 95)))
    rng = np.random.default_rng(20251127)
    (sa, ra), (sb, rb) = _resamples(a, rng), _resamples(b, rng)
    sa, sb = sa.tolist(), sb.tolist()
    stats = []
    for q in (50, 95):
        pa, pb = percentile(sa, q), percentile(sb, q)
        least = MIN_SAMPLES if q <= 50 else MIN_TAIL_SAMPLES
        if len(a) < least or len(b) < least:
            stats.append(ComparedStat(pa, pb))
            continue
        diffs = percentile_rows(rb, q) - percentile_rows(ra, q)
        lo, hi = (float(x) for x in percentile_rows(diffs, [2.5, 97.5]))
        margin = max(EFFECT * abs(pa), MIN_TIME if figure.unit == "s" else 0.0)
        verdict = "unclear"
        if lo > margin or hi < -margin:
            lower = hi < -margin
            verdict = "better" if lower != figure.higher_is_better else "worse"
        stats.append(ComparedStat(pa, pb, (lo, hi), verdict))
    return ComparedFigure(figure, len(a), len(b), stats[0], stats[1])


def compare_values(
    a_values: Mapping[str, Sequence[float]], b_values: Mapping[str, Sequence[float]],
    extra: Sequence[Figure] = (),
) -> list[ComparedFigure]:
    """p50 and p95 of each figure (and of the ``extra`` ones) for A and B (figure name ->
    values), each with its bootstrap interval and verdict."""
    return [compared_figure(figure, list(a_values.get(figure.name, [])),
                            list(b_values.get(figure.name, [])))
            for figure in (*FIGURES, *extra)
            if not shown_only_if_measured(figure)
            or a_values.get(figure.name) or b_values.get(figure.name)]


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
    if by != "session":
        return Comparison(by, ka, kb, compare_values(va, vb, extra))
    from lkmetrics.store.agents import agent_labels

    return Comparison(by, ka, kb, compare_values(va, vb, extra), session_label(store, ka),
                      session_label(store, kb), agent_labels(store, [ka, kb]))


def session_label(store: Store, session_id: str) -> str:
    """A session's command, models and status, for people."""
    row = store.session(session_id)
    models = " / ".join(m for m in (row.stt, row.llm, row.tts) if m)
    parts = [p for p in (row.command, models, row.exit_status) if p]
    return ", ".join(parts)
