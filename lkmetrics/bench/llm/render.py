"""``bench llm``'s output: a progress bar on stderr, then a table or one JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO

from lkmetrics.bench.llm.core import FIGURE_NAMES, STATS, RunResult, document
from lkmetrics.units import fmt_value

TITLES = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "latency": "Latency"}


def write_json(runs: Sequence[RunResult], out: IO[str], bench_id: str | None = None,
               stopped_by: str | None = None) -> None:
    """Exactly one JSON document, on one line; ``stopped_by``: the signal that stopped the
    bench before the runs not in it."""
    doc = document(runs, bench_id)
    if stopped_by is not None:
        doc["stopped_by"] = stopped_by
    out.write(json.dumps(doc, separators=(",", ":")) + "\n")
    out.flush()


def _rate(value: float | None, unit: str) -> str:
    """1 decimal, or 2 significant digits below 1 (one 52 s request is 0.019 req/s, not 0.0)."""
    if value is None:
        return "-"
    return f"{value:.2g} {unit}" if 0 < value < 1 else f"{value:.1f} {unit}"


def write_table(runs: Sequence[RunResult], out: IO[str], bench_id: str | None = None,
                recorded: bool = False) -> None:
    """One table per run: each figure's mean, p50, p90, p95, p99 and max; then throughput;
    then the bench id (for ``report --bench``) when the runs were recorded."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from lkmetrics.safety import console as safe_console
    from lkmetrics.safety import text

    console = safe_console(file=out)
    for run in runs:
        body = run.to_json()
        table = Table(
            title=Text.assemble(text(run.model, "bold"),
                                text(f"  concurrency {run.concurrency}  ({run.provider})")),
            box=box.SIMPLE_HEAVY, title_justify="left",
        )
        table.add_column("figure")
        for stat in STATS:
            table.add_column(stat, justify="right")
        for name in FIGURE_NAMES:
            stats = body[name]
            table.add_row(TITLES[name], *(fmt_value(stats[s], "s") for s in STATS))
        console.print(table)
        noun = "error" if run.errors == 1 else "errors"
        errors = (Text.assemble(text(f"{run.errors} {noun}", "red"),
                                text(f" (first: {run.first_error or ''})"))
                  if run.errors else Text("0 errors"))
        console.print(Text.assemble(
            f"  {len(run.requests)} request{'' if len(run.requests) == 1 else 's'}, ", errors,
            f"; {body['output_tokens']} output tokens "
            f"in {body['wall_s']:.2f} s: {_rate(body['output_tokens_per_s'], 'tok/s')}, "
            f"{_rate(body['requests_per_s'], 'req/s')}"
            + (f"; session {run.session_id}" if run.session_id else "")),
            soft_wrap=True,
        )
        console.print()
    if bench_id is not None and recorded:
        console.print(f"runs recorded under bench id {bench_id}: lkmetrics report --bench "
                      f"{bench_id}", soft_wrap=True)


