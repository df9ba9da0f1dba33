"""``lkmetrics bench llm`` and ``bench voice`` end to end: check credentials and the store, run
every model (or stack) and concurrency with a progress bar, print the runs, check the budgets
and give the verdict."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer

from lkmetrics.agent import signals
from lkmetrics.analysis.budgets import Budget
from lkmetrics.bench import llm as core
from lkmetrics.bench import voice
from lkmetrics.config import AgentSettings, FleetOptions, check_credentials
from lkmetrics.pipeline import KeptOpen


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

    from lkmetrics.bench import render

    bench_id = voice.new_bench_id()
    with contextlib.ExitStack() as stack:
        shared = stack.enter_context(fleet_writers(fleet or FleetOptions(), config.budgets))
        with render.progress(config.total_requests) as advance:
            from lkmetrics.bench import runner

            stop = stack.enter_context(signals.stop_like_ctrl_c("bench llm"))
            runs, write_errors = runner.run(config, bench_id, db=db, record=not no_record,
                                            progress=advance, fleet=shared, stop=stop)
    if json_out:
        render.write_json(runs, sys.stdout, bench_id)
    else:
        render.write_table(runs, sys.stdout, bench_id, recorded=not no_record)
    sys.stdout.flush()
    for message in write_errors[:5]:
        typer.echo(f"lkmetrics: could not write a record: {message}", err=True)
    checked = core.check(runs, config.budgets)
    if checked:
        from lkmetrics.render import tables

        tables.budgets(checked, sys.stderr)
    core.verdict(runs, checked)
    return bench_id


def run_voice_bench(config: voice.VoiceConfig, *, json_out: bool, db: Path | None,
                    record: bool, fleet: FleetOptions | None = None) -> str:
    """``bench voice`` end to end; the bench id. Raises BenchFailed when a turn failed or a
    budget broke (after printing the runs)."""
    for settings in config.stacks:
        check_credentials(settings)
    if any(s.uses_local() for s in config.stacks):
        from lkmetrics.local import require_local_extra

        require_local_extra()
    if record:  # a bad --db fails now, before any model is loaded
        from lkmetrics.store import Store, default_db_path

        Store.open(db or default_db_path()).close()

    from lkmetrics.bench import render, voice_render

    bench_id = voice.new_bench_id()
    callers = sum(config.concurrency)
    turns = len(config.stacks) * callers * config.repeat * (len(config.say) or 3)
    with contextlib.ExitStack() as stack:
        shared = stack.enter_context(fleet_writers(fleet or FleetOptions(), config.budgets))
        with render.progress(turns, "bench voice") as advance:
            from lkmetrics.bench import voice_driver

            stop = stack.enter_context(signals.stop_like_ctrl_c("bench voice"))
            runs, write_errors = voice_driver.run(config, bench_id, db=db, record=record,
                                                  progress=advance, fleet=shared, stop=stop)
    checked = voice.check(runs, config.budgets)
    if json_out:
        voice_render.write_json(bench_id, runs, checked, sys.stdout)
    else:
        voice_render.write_table(bench_id, runs, checked, sys.stdout, recorded=record)
    sys.stdout.flush()
    for message in write_errors[:5]:
        typer.echo(f"lkmetrics: could not write a record: {message}", err=True)
    if checked:
        from lkmetrics.render import tables

        tables.budgets(checked, sys.stderr)
    voice.verdict(runs, checked)
    return bench_id


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
