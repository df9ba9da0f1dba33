"""What bench llm and bench voice share: counts and concurrencies parsed, the bench id, the
verdict's failure, the progress bar and the fleet writers of a whole bench."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lkmetrics.analysis.budgets import Budget, BudgetResult
from lkmetrics.config.options import FleetOptions
from lkmetrics.errors import BenchFailed, UsageError
from lkmetrics.pipeline import KeptOpen

MAX_CONCURRENCY = 1_000
MAX_COUNT = 1_000_000  # requests, warm-up requests, output tokens, repeats


def parse_concurrency(values: Sequence[str] | None) -> list[int]:
    """``--concurrency 1 --concurrency 4`` or ``--concurrency 1,4,16``: the distinct values,
    in the order given. Default: 1."""
    out: list[int] = []
    for value in values or ["1"]:
        for part in str(value).split(","):
            text = part.strip()
            try:
                n = int(text)
            except ValueError:
                raise UsageError(
                    f"--concurrency expects whole numbers, e.g. 1,4,16 (got {value!r})."
                ) from None
            if n < 1:
                raise UsageError(f"--concurrency must be at least 1 (got {n}).")
            if n > MAX_CONCURRENCY:
                raise UsageError(f"--concurrency must be at most {MAX_CONCURRENCY:,} (got {n}).")
            if n not in out:
                out.append(n)
    return out


def raise_failures(parts: list[str], checked: Sequence[BudgetResult]) -> None:
    """Raise BenchFailed naming ``parts`` (failed requests or turns) and every broken budget."""
    from lkmetrics.analysis.budgets import BudgetExceeded, fail_on_broken

    try:
        fail_on_broken(checked)
    except BudgetExceeded as e:
        parts.append(str(e).rstrip("."))
    if parts:
        raise BenchFailed("; ".join(parts) + ".")


def new_bench_id() -> str:
    return "b_" + secrets.token_hex(4)


@contextlib.contextmanager
def progress(total: int, title: str = "bench llm") -> Iterator[Callable[[str], None] | None]:
    """On a terminal, a bar on stderr counting requests (or turns); yields the per-item
    callback (None when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    from lkmetrics.activity import showing

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar, showing(bar):  # a status under it: a line above
        task = bar.add_task(title, total=total)

        def advance(label: str) -> None:
            bar.update(task, advance=1, description=label)

        yield advance


@contextlib.contextmanager
def fleet_writers(opts: FleetOptions, budgets: Sequence[Budget]) -> Iterator[list[Any]]:
    """--prometheus-port / --otlp for the whole bench; the --fail-over limits are buckets."""
    from lkmetrics.fleet import check_fleet_options, open_fleet_writers

    check_fleet_options(opts.prometheus_port, opts.otlp)
    limits = [b.limit for b in budgets if b.figure.unit == "s"]
    writers = open_fleet_writers(prometheus_host=opts.prometheus_host,
                                 prometheus_port=opts.prometheus_port, otlp_url=opts.otlp,
                                 budgets=limits)
    try:
        yield [KeptOpen(w) for w in writers]
    finally:
        for w in writers:
            with contextlib.suppress(Exception):
                w.close()
