"""``bench llm --workers N``: spread each run's concurrent requests over N worker processes.

A request through LiveKit's LLM classes costs the client several ms of CPU (the OpenAI SDK
builds pydantic objects for every chunk, LiveKit's LLMStream tees each one to its metrics
task), so at high concurrency one event loop is saturated and chunks wait for it, which adds
to the TTFT measured. Each worker is a spawned process with its own event loop and its own
LiveKit LLM object; it runs its share of the run's in-flight requests, taking request
indices from one shared counter (so the run keeps ``concurrency`` requests in flight until
the last one), after a start barrier (so requests of every process start together). Results
and LiveKit's LLMMetrics (as records) come back to the parent, which computes the figures and
writes the sessions exactly as a run in one process does. Imported only when a bench runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from lkmetrics.bench.llm.core import BenchConfig, RequestResult, RunResult
from lkmetrics.bench.llm.driver import BenchRun, Progress, abandon
from lkmetrics.errors import LkmetricsError
from lkmetrics.records import Record, convert_metric

POLL = 0.1  # seconds between the parent's looks at its workers


def shares(concurrency: int, workers: int) -> list[int]:
    """The in-flight requests of each worker: ``concurrency`` split as evenly as can be."""
    base, extra = divmod(concurrency, workers)
    return [base + (1 if k < extra else 0) for k in range(workers)]


def _worker(conn: Connection, barrier: Any, counter: Any, done: Any, config: BenchConfig,
            local: tuple[str, str] | None) -> None:
    """A worker process: runs jobs ``(model, slots)`` until it receives None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    from lkmetrics.bench.llm import driver

    loop = asyncio.new_event_loop()
    targets: dict[str, driver.Target] = {}
    contexts = [driver.chat_context(p) for p in config.prompts]
    n = config.requests

    def take() -> int | None:
        with counter.get_lock():
            i = int(counter.value)
            if i >= n:
                return None
            counter.value = i + 1
            return i

    async def job(model: str, slots: int) -> tuple[float, float, list[Any], list[Any], str]:
        if slots == 0:  # this run needs fewer processes: only take part in the barrier
            barrier.wait()
            return 0.0, 0.0, [], [], ""
        target = targets.get(model)
        if target is None:
            target = targets[model] = driver.build_target(model, config.base_url, local)
        await driver.warm_up(target, config, contexts)
        results: list[tuple[int, RequestResult]] = []
        metrics: list[tuple[float, Record]] = []

        def on_metrics(m: Any) -> None:
            metrics.append((time.time(), convert_metric(m)))

        def finished(i: int, result: RequestResult) -> None:
            results.append((i, result))
            with done.get_lock():
                done.value += 1

        barrier.wait()  # nothing else runs on this loop yet
        target.llm.on("metrics_collected", on_metrics)
        try:
            start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
            await driver.send_requests(target, slots, config, contexts, take, finished)
            end = time.perf_counter()
        finally:
            target.llm.off("metrics_collected", on_metrics)
        return start, end, results, metrics, target.provider

    with driver.quiet_livekit():
        try:
            while (message := conn.recv()) is not None:
                model, slots = message
                try:
                    conn.send(("ok", loop.run_until_complete(job(model, slots))))
                except Exception as e:
                    barrier.abort()  # the others must not wait for us
                    conn.send(("error", f"{type(e).__name__}: {e}"))
        finally:
            for target in targets.values():
                loop.run_until_complete(target.llm.aclose())
            loop.close()


class Pool:
    """``count`` worker processes for a whole bench, each with its own pipe."""

    def __init__(self, count: int, config: BenchConfig, local: tuple[str, str] | None) -> None:
        ctx = mp.get_context("spawn")  # never fork a process with LiveKit's threads in it
        self.barrier = ctx.Barrier(count)
        self.counter = ctx.Value("q", 0)
        self.done = ctx.Value("q", 0)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, daemon=True, name="lkmetrics-bench-worker",
                               args=(child, self.barrier, self.counter, self.done, config,
                                     local))
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def run(self, model: str, slots: list[int], progress: Progress | None,
            label: str) -> list[Any]:
        """One run: every worker's (start, end, results, metrics); blocks until all are in."""
        with self.counter.get_lock():
            self.counter.value = 0
        with self.done.get_lock():
            self.done.value = 0
        for conn, share in zip(self.conns, slots, strict=True):
            conn.send((model, share))
        replies: dict[int, Any] = {}
        reported = 0
        while len(replies) < len(self.conns):
            for k, conn in enumerate(self.conns):
                if k not in replies and conn.poll(POLL / len(self.conns)):
                    try:
                        replies[k] = conn.recv()
                    except (EOFError, OSError):  # its end closed, or reset as it died
                        self.barrier.abort()
                        replies[k] = ("error", "the worker process exited")
                elif k not in replies and not self.procs[k].is_alive():
                    self.barrier.abort()
                    replies[k] = ("error", f"the worker process exited with code "
                                           f"{self.procs[k].exitcode}")
            now = int(self.done.value)
            if progress is not None:
                for _ in range(now - reported):
                    progress(label)
            reported = now
        errors = [r[1] for r in replies.values() if r[0] != "ok"]
        if errors:
            raise LkmetricsError(f"a bench llm worker failed: {errors[0]}")
        return [replies[k][1] for k in range(len(self.conns))]

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for conn in self.conns:
            conn.close()


def run_with_workers(config: BenchConfig, bench: BenchRun) -> None:
    """Every model at every concurrency, each run over ``config.workers_for(c)`` of one pool
    of processes; the parent records each run's session as a run in one process does."""
    size = max(config.workers_for(c) for c in config.concurrency)
    pool = Pool(size, config, bench.local)
    try:
        for model in config.models:
            local = model == "local" and bench.local is not None
            base_url = bench.local[0] if local and bench.local else config.base_url
            for concurrency in config.concurrency:
                used = min(config.workers_for(concurrency), concurrency, config.requests)
                slots = shares(min(concurrency, config.requests), used)
                slots += [0] * (size - used)
                recorder = bench.open_session(model, base_url, concurrency, used)
                try:
                    replies = pool.run(model, slots, bench.progress, f"{model} @ {concurrency}")
                except BaseException as e:
                    abandon(recorder, e, bench.stop)
                    raise
                results = [RequestResult() for _ in range(config.requests)]
                metrics: list[tuple[float, Record]] = []
                for _start, _end, answered, kept, _provider in replies:
                    for i, result in answered:
                        results[i] = result
                    metrics.extend(kept)
                # in LiveKit's own time order, as one process would have written them
                metrics.sort(key=lambda m: float(m[1].get("timestamp") or m[0]))
                active = [(s, e) for (s, e, answered, _, _) in replies if answered]
                provider = next((r[4] for r in replies if r[4]), "")
                wall = (max(e for _, e in active) - min(s for s, _ in active)) if active else 0.0
                if recorder is not None:
                    for t, record in metrics:
                        recorder.put_record(record, t)
                run = RunResult(model, provider, concurrency, results, wall,
                                metrics=[record for _, record in metrics])
                bench.finish(run, recorder)
    finally:
        pool.close()
