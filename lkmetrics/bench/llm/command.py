"""``lkmetrics bench llm`` end to end: check credentials and the store, run every model and
concurrency with a progress bar, print the runs, check the budgets and give the verdict."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from lkmetrics.agent import signals
from lkmetrics.analysis.budgets import BudgetResult
from lkmetrics.bench.llm import core
from lkmetrics.bench.shared import fleet_writers, new_bench_id, progress
from lkmetrics.config.credentials import check_credentials
from lkmetrics.config.options import FleetOptions
from lkmetrics.config.settings import AgentSettings
from lkmetrics.errors import StoppedBySignal


def run_llm_bench(config: core.BenchConfig, *, json_out: bool, db: Path | None,
                  record: bool, fleet: FleetOptions | None = None) -> str:
    """``bench llm`` end to end; the bench id. Raises BenchFailed/LkmetricsError when a
    request failed or a budget broke (after printing the runs)."""
    no_record = not record
    for name in config.models:
        check_credentials(AgentSettings(stt=None, tts=None, llm=name,
                                        llm_base_url=config.base_url))
    if "local" in config.models:
        from lkmetrics.local import require_local_extra

        require_local_extra()
    if not no_record:  # a bad --db fails now, before any request is sent
        from lkmetrics.store import Store, default_db_path

        Store.open(db or default_db_path()).close()

    bench_id = new_bench_id()
    done: list[core.RunResult] = []  # the runs finished, also when a signal stops the bench
    try:
        with contextlib.ExitStack() as stack:
            shared = stack.enter_context(fleet_writers(fleet or FleetOptions(), config.budgets))
            with progress(config.total_requests) as advance:
                from lkmetrics.bench.llm import runner

                stop = stack.enter_context(signals.stop_like_ctrl_c("bench llm"))
                runs, write_errors = runner.run(config, bench_id, db=db, record=not no_record,
                                                progress=advance, fleet=shared, stop=stop,
                                                done=done)
    except StoppedBySignal as e:  # what was measured is not lost: the runs that finished
        if done:
            write(done, json_out=json_out, bench_id=bench_id, recorded=not no_record,
                  stopped_by="SIGTERM" if e.exit_code == 143 else "SIGINT",
                  checked=core.check(done, config.budgets))
        raise
    checked = core.check(runs, config.budgets)
    write(runs, json_out=json_out, bench_id=bench_id, recorded=not no_record, checked=checked)
    for message in write_errors[:5]:
        typer.echo(f"lkmetrics: could not write a record: {message}", err=True)
    for run in runs:
        over = run.over_cap(config.max_tokens)
        if over:
            typer.echo(f"warning: {len(over)} of {len(run.ok)} requests of {run.label} returned "
                       f"more tokens than --max-tokens {config.max_tokens} (up to {max(over)}): "
                       "the server ignores the cap, so their latency is not comparable",
                       err=True)
    if checked:
        from lkmetrics.render import tables

        tables.budgets(checked, sys.stderr)
    core.verdict(runs, checked)
    return bench_id


def write(runs: list[core.RunResult], *, json_out: bool, bench_id: str, recorded: bool,
          stopped_by: str | None = None, checked: Sequence[BudgetResult] = ()) -> None:
    """The runs on stdout: one JSON document, or a table per run."""
    from lkmetrics.bench.llm import render

    if json_out:
        render.write_json(runs, sys.stdout, bench_id, stopped_by=stopped_by)
    else:
        render.write_table(runs, sys.stdout, bench_id, recorded=recorded, checked=checked)
    sys.stdout.flush()
