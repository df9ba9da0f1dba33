"""``bench llm``'s whole run: the local server when asked, then every run in this process or
spread over worker processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lkmetrics.agent.signals import Stop
from lkmetrics.bench.llm.core import BenchConfig, RunResult
from lkmetrics.bench.llm.driver import BenchRun, Progress, in_process, quiet_livekit
from lkmetrics.bench.llm.workers import run_with_workers


def run(config: BenchConfig, bench_id: str, *, db: Path | None, record: bool,
        progress: Progress | None = None, fleet: Sequence[Any] = (),
        stop: Stop | None = None, done: list[RunResult] | None = None
        ) -> tuple[list[RunResult], list[str]]:
    """Run the whole bench (starting the local LLM server first when ``local`` is asked): in
    this process, or spread over worker processes when a run asks for more than one; the runs
    and any write errors. ``done`` gets each run as it finishes (what is left of a bench a
    signal stopped)."""
    with contextlib.ExitStack() as stack:
        bench = BenchRun(config, bench_id, db, record, fleet, progress, stop=stop,
                         runs=done if done is not None else [])
        if "local" in config.models:
            from lkmetrics.local.llm_server import start_local_llm

            bench.local = start_local_llm(stack)
        stack.enter_context(quiet_livekit())
        if max(config.workers_for(c) for c in config.concurrency) > 1:
            run_with_workers(config, bench)
        else:
            asyncio.run(in_process(config, bench))
        return bench.runs, bench.write_errors
