"""Latency budgets: ``FIGURE.STAT=LIMIT`` parsed, checked against a report, and enforced.

A budget on a time is a ceiling (broken when the stat is over the limit); a budget on a
figure where higher is better (``llm.decode_rate``) is a floor (broken when under it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lkmetrics.errors import BudgetExceeded, UsageError
from lkmetrics.figures import (
    COST_FIGURES,
    COST_FIGURES_BY_NAME,
    FIGURES,
    FIGURES_BY_NAME,
    SPREAD_STATS,
    Figure,
)
from lkmetrics.units import fmt_value

__all__ = ["BUDGET_STATS", "Budget", "BudgetExceeded", "BudgetResult", "check_budgets",
           "check_statuses",
           "fail_on_broken", "parse_budget"]

if TYPE_CHECKING:
    from lkmetrics.analysis.report import Report

BUDGET_STATS = SPREAD_STATS


@dataclass(frozen=True)
class Budget:
    """``FIGURE.STAT=LIMIT``: fail when the stat is over the limit (under it for a figure where
    higher is better, such as ``llm.decode_rate``: there the limit is a floor)."""

    spec: str
    figure: Figure
    stat: str
    limit: float  # in the figure's unit (seconds, tok/s or USD)


@dataclass(frozen=True)
class BudgetResult:
    budget: Budget
    group: str
    value: float | None  # None: the figure has no values here
    unknown: tuple[str, ...] = ()  # a cost budget: models without a price (broken: unknown)
    allow_empty: bool = False  # --allow-empty: no values is not checked, not broken

    @property
    def broken(self) -> bool:
        if self.unknown:
            return True
        if self.value is None:  # a broken agent measures nothing: that must not pass
            return not self.allow_empty
        if self.budget.figure.higher_is_better:  # a floor
            return self.value < self.budget.limit
        return self.value > self.budget.limit


# ASCII digits only (a full-width "１" is refused, not read as 1); spaces around "=" and before
# the unit are allowed ("e2e.p95 = 1.2 s")
_BUDGET_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9_.]+)\.(?P<stat>[a-z0-9]+)\s*=\s*"
    r"(?P<dollar>\$)?(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>ms|s|tok/s|USD)?$",
    re.ASCII,
)


def parse_budget(spec: str) -> Budget:
    """Parse ``e2e.p95=1.2s``, ``llm.ttft.p50=500ms``, ``llm.decode_rate.p50=40tok/s``,
    ``cost.turn.p95=0.002`` (USD; ``$0.002`` and ``0.002USD`` too), ``stt.wer.mean=0.15``,
    ``eot_mispredictions.max=0``."""
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
    elif figure.unit in ("count", "ratio"):
        if unit is not None:
            what = "a count per turn" if figure.unit == "count" else "a ratio (0.15 is 15%)"
            raise UsageError(f"--fail-over: {name} is {what}, a plain number, e.g. "
                             f"{name}.max=0 (got {spec!r}).")
    elif unit in ("ms", "s"):
        raise UsageError(f"--fail-over: {name} is a rate in tok/s (got {spec!r}).")
    return Budget(spec.strip(), figure, stat, limit)


def check_budgets(report: Report, budgets: Sequence[Budget], *,
                  allow_empty: bool = False) -> list[BudgetResult]:
    """Each budget against each group of the report that has the figure. A figure with no
    values breaks its budget, unless ``allow_empty``."""
    results: list[BudgetResult] = []
    for budget in budgets:
        if budget.figure.unit == "USD" and report.cost is not None and report.cost.unknown:
            results.append(BudgetResult(budget, "all", None, tuple(report.cost.unknown)))
            continue
        rows = [r for r in report.rows if r.figure.name == budget.figure.name]
        if not rows:
            results.append(BudgetResult(budget, "all", None, allow_empty=allow_empty))
        for r in rows:
            value = r.stats.get(budget.stat)
            results.append(BudgetResult(budget, r.group, None if value is None else float(value),
                                        allow_empty=allow_empty))
    return results


def check_statuses(statuses: Mapping[str, str | None], allowed: Sequence[str]) -> None:
    """Budgets are checked on sessions that ended well: raise BudgetExceeded naming every
    session whose status is not ``ok`` nor one of ``allowed``. None is a status the store
    does not know (an imported session; one still running) and is not held against it."""
    accepted = {"ok", *allowed}
    bad = {sid: status for sid, status in statuses.items()
           if status is not None and status not in accepted}
    if not bad:
        return
    shown = ", ".join(f"{sid} ({status})" for sid, status in list(bad.items())[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    noun = "session" if len(bad) == 1 else "sessions"
    raise BudgetExceeded(
        f"budgets not met: {len(bad)} checked {noun} did not end ok: {shown}{more} (pass "
        f"--allow-status STATUS to accept a status).")


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
        if r.value is None:
            parts.append(f"{r.budget.figure.name}.{r.budget.stat} has no values{where} "
                         "(pass --allow-empty to allow that)")
            continue
        op = "<" if r.budget.figure.higher_is_better else ">"
        parts.append(
            f"{r.budget.figure.name}.{r.budget.stat} = {fmt_value(r.value, unit)} {op} "
            f"{fmt_value(r.budget.limit, unit)}{where}"
        )
    noun = "budget" if len(broken) == 1 else "budgets"
    raise BudgetExceeded(f"{len(broken)} {noun} broken: " + "; ".join(parts) + ".")
