"""``bench llm``'s output: a progress bar on stderr, then a table or one JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO

from lkmetrics.analysis.budgets import BudgetResult
from lkmetrics.bench.llm.core import STATS, RunResult, budget_report, document
from lkmetrics.figures import REQUEST_FIGURES, Figure
from lkmetrics.units import fmt_value


def write_json(runs: Sequence[RunResult], out: IO[str], bench_id: str | None = None,
               stopped_by: str | None = None) -> None:
    """Exactly one JSON document, on one line; ``stopped_by``: the signal that stopped the
    bench before the runs not in it."""
    doc = document(runs, bench_id)
    if stopped_by is not None:
        doc["stopped_by"] = stopped_by
    out.write(json.dumps(doc, separators=(",", ":")) + "\n")
    out.flush()


def _budgeted(checked: Sequence[BudgetResult]) -> list[Figure]:
    """The figures the budgets checked, once each, in the order given."""
    out: list[Figure] = []
    for r in checked:
        if r.budget.figure not in out:
            out.append(r.budget.figure)
    return out


def write_table(runs: Sequence[RunResult], out: IO[str], bench_id: str | None = None,
                recorded: bool = False, checked: Sequence[BudgetResult] = ()) -> None:
    """One table per run: each request figure's mean, p50, p90, p95, p99 and max, then those
    of every figure a budget checked (LiveKit's LLM metrics: the very stats the budget lines
    give); then throughput; then the bench id (for ``report --bench``) when the runs were
    recorded."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from lkmetrics.safety import console as safe_console
    from lkmetrics.safety import text

    console = safe_console(file=out)
    budgeted = _budgeted(checked)
    livekit = {(row.group, row.figure.name): row.stats
               for row in budget_report(runs).rows} if budgeted else {}
    for run in runs:
        body = run.to_json()
        table = Table(
            title=Text.assemble(text(run.model, "bold"),
                                text(f"  concurrency {run.concurrency}  ({run.provider})")),
            box=box.SIMPLE_HEAVY, title_justify="left",
            caption=(f"{', '.join(f.shown for f in budgeted)}: LiveKit's LLMMetrics, as "
                     "--fail-over checks them" if budgeted else None), caption_justify="left",
        )
        table.add_column("figure")
        for stat in STATS:
            table.add_column(stat, justify="right")
        for figure in REQUEST_FIGURES:
            stats = body[figure.name]
            table.add_row(figure.shown, *(fmt_value(stats[s], figure.unit) for s in STATS))
        for figure in budgeted:
            found = livekit.get((run.label, figure.name), {})
            table.add_row(figure.shown, *(fmt_value(found.get(s), figure.unit) for s in STATS))
        console.print(table)
        noun = "error" if run.errors == 1 else "errors"
        errors = (Text.assemble(text(f"{run.errors} {noun}", "red"),
                                text(f" (first: {run.first_error or ''})"))
                  if run.errors else Text("0 errors"))
        console.print(Text.assemble(
            f"  {len(run.requests)} request{'' if len(run.requests) == 1 else 's'}, ", errors,
            f"; {body['output_tokens']} output tokens "
            f"in {fmt_value(body['wall_s'], 's')}: "
            f"{fmt_value(body['output_tokens_per_s'], 'tok/s')}, "
            f"{fmt_value(body['requests_per_s'], 'req/s')}"
            + (f"; session {run.session_id}" if run.session_id else "")),
            soft_wrap=True,
        )
        console.print()
    if bench_id is not None and recorded:
        console.print(f"runs recorded under bench id {bench_id}: lkmetrics report --bench "
                      f"{bench_id}", soft_wrap=True)


