"""``lkmetrics bench voice`` end to end: check credentials and the store, run every stack and
concurrency with a progress bar, print the runs, check the budgets and give the verdict."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from lkmetrics.agent import signals
from lkmetrics.analysis.budgets import BudgetResult
from lkmetrics.bench.shared import fleet_writers, new_bench_id, progress
from lkmetrics.bench.voice import core as voice
from lkmetrics.config.credentials import check_credentials
from lkmetrics.config.options import FleetOptions
from lkmetrics.errors import StoppedBySignal


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
    user = None
    if config.agent is not None:  # a TARGET with no agent in it fails now, before any run
        from lkmetrics.agent.user import load_reporting

        user = load_reporting(config.agent)

    bench_id = new_bench_id()
    callers = sum(config.concurrency)
    values = len(config.sweep.values) if config.sweep is not None else 1
    turns = len(config.stacks) * values * callers * config.repeat * config.lines
    done: list[voice.VoiceRun] = []  # the runs finished, also when a signal stops the bench
    try:
        with contextlib.ExitStack() as stack:
            shared = stack.enter_context(fleet_writers(fleet or FleetOptions(), config.budgets))
            with progress(turns, "bench voice") as advance:
                from lkmetrics.bench.voice import driver as voice_driver

                stop = stack.enter_context(signals.stop_like_ctrl_c("bench voice"))
                runs, write_errors = voice_driver.run(config, bench_id, db=db, record=record,
                                                      progress=advance, fleet=shared,
                                                      stop=stop, user=user, done=done)
    except StoppedBySignal as e:  # what was measured is not lost: the runs that finished
        if done:
            _write(bench_id, done, voice.check(done, config.budgets), json_out=json_out,
                   recorded=record, stopped_by="SIGTERM" if e.exit_code == 143 else "SIGINT")
        raise
    checked = voice.check(runs, config.budgets)
    _write(bench_id, runs, checked, json_out=json_out, recorded=record)
    for message in write_errors[:5]:
        typer.echo(f"lkmetrics: could not write a record: {message}", err=True)
    if checked:
        from lkmetrics.render import tables

        tables.budgets(checked, sys.stderr)
    voice.verdict(runs, checked)
    return bench_id


def _write(bench_id: str, runs: list[voice.VoiceRun], checked: list[BudgetResult], *,
           json_out: bool, recorded: bool, stopped_by: str | None = None) -> None:
    """The runs on stdout: one JSON document, or the tables."""
    from lkmetrics.bench.voice import render as voice_render

    if json_out:
        voice_render.write_json(bench_id, runs, checked, sys.stdout, stopped_by=stopped_by)
    else:
        voice_render.write_table(bench_id, runs, checked, sys.stdout, recorded=recorded)
    sys.stdout.flush()
