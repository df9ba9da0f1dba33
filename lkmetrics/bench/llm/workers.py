"""``bench llm --workers N``: spread each run's concurrent requests over N worker processes.

A request through LiveKit's LLM classes costs the client several ms of CPU (the OpenAI SDK
builds pydantic objects for every chunk, LiveKit's LLMStream tees each one to its metrics
task), so at high concurrency one event loop is saturated and chunks wait for it, which adds
to the TTFT measured. Each worker is a spawned process with its own event loop and its own
LiveKit LLM object; it runs its share of the run's in-flight requests, taking request
indices from one ticket pipe (so the run keeps ``concurrency`` requests in flight until the
last one). Results and LiveKit's LLMMetrics (as records) come back to the parent, which
computes the figures and writes the sessions exactly as a run in one process does. Imported
only when a bench runs.

Nothing here can be wedged by a worker that dies (kill -9, the OOM killer, a crash in native
code) at any moment: there is no shared lock, condition or barrier. Each worker has its own
pipe to the parent (job, "ready", one message per finished request, the result; then "go"
from the parent once every worker is ready), and request indices are 4-byte tickets in one
OS pipe, each taken by one ``read`` (which the kernel makes atomic and which no process can
hold). The parent waits on the pipes and on every worker's ``sentinel`` together, so it sees
a death as soon as it happens and ends the run with one error.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import struct
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from lkmetrics.bench.llm.core import BenchConfig, RequestResult, RunResult
from lkmetrics.bench.llm.driver import BenchRun, Progress, abandon
from lkmetrics.errors import LkmetricsError
from lkmetrics.records import Record, convert_metric

POLL = 0.25  # seconds between the parent's looks at its workers when nothing arrives
TICKET = struct.Struct("<I")  # one request index; END tells a worker the run has no more
END = 0xFFFFFFFF
CHUNK = 1024  # tickets per write: 4096 bytes, a write the kernel keeps whole (PIPE_BUF)


def shares(concurrency: int, workers: int) -> list[int]:
    """The in-flight requests of each worker: ``concurrency`` split as evenly as can be."""
    base, extra = divmod(concurrency, workers)
    return [base + (1 if k < extra else 0) for k in range(workers)]


class Tickets:
    """Request indices for the workers of one run, through one OS pipe.

    The parent writes every index of a run, then one END per worker taking part; a worker
    reads one ticket (4 bytes) per request. Writes of at most PIPE_BUF bytes are atomic and
    every write and read is a whole number of tickets, so each read takes exactly one ticket
    and no two workers ever take the same one."""

    def __init__(self, ctx: Any) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self._feeder: threading.Thread | None = None
        self._stop = threading.Event()

    def feed(self, count: int, takers: int) -> None:
        """Write indices 0..count-1 then ``takers`` ENDs, from a thread (the pipe may fill)."""
        self._stop.clear()
        tickets = [*range(count), *([END] * takers)]
        fd = self.writer.fileno()

        def write() -> None:
            for k in range(0, len(tickets), CHUNK):
                if self._stop.is_set():
                    return
                part = tickets[k:k + CHUNK]
                data = struct.pack(f"<{len(part)}I", *part)
                try:
                    os.write(fd, data)
                except OSError:  # closed as the pool ends
                    return

        self._feeder = threading.Thread(target=write, name="lkmetrics-bench-tickets",
                                        daemon=True)
        self._feeder.start()

    def drain(self) -> None:
        """Stop feeding and empty the pipe (after a run that did not finish)."""
        self._stop.set()
        fd = self.reader.fileno()
        os.set_blocking(fd, False)
        try:
            while True:
                try:
                    if not os.read(fd, 65536):
                        break
                except BlockingIOError:  # empty: done once the feeder has seen the stop
                    if self._feeder is None or not self._feeder.is_alive():
                        break
                    time.sleep(0.01)
        finally:
            os.set_blocking(fd, True)


def take_from(reader: Connection) -> Any:
    """A worker's ``take``: the next request index, or None once it read its END."""
    fd = reader.fileno()
    ended = False

    def take() -> int | None:
        nonlocal ended
        if ended:
            return None
        data = os.read(fd, TICKET.size)
        if len(data) != TICKET.size:  # the parent is gone
            ended = True
            return None
        (i,) = TICKET.unpack(data)
        if i == END:
            ended = True
            return None
        return int(i)

    return take


def _worker(conn: Connection, tickets: Connection, config: BenchConfig,
            local: tuple[str, str] | None) -> None:
    """A worker process: runs jobs ``(model, slots)`` until it receives None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    from lkmetrics.bench.llm import driver

    loop = asyncio.new_event_loop()
    targets: dict[str, driver.Target] = {}
    contexts = [driver.chat_context(p) for p in config.prompts]

    async def job(model: str, slots: int) -> tuple[float, float, list[Any], list[Any], str]:
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
            conn.send(("done",))

        conn.send(("ready",))
        if conn.recv() != "go":  # nothing else runs on this loop yet
            return 0.0, 0.0, [], [], ""
        take = take_from(tickets)
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
                if slots == 0:  # this run needs fewer processes
                    conn.send(("ok", (0.0, 0.0, [], [], "")))
                    continue
                try:
                    conn.send(("ok", loop.run_until_complete(job(model, slots))))
                except Exception as e:
                    conn.send(("error", f"{type(e).__name__}: {e}"))
        except (EOFError, OSError):  # the parent is gone: nothing left to report to
            pass
        finally:
            for target in targets.values():
                with contextlib.suppress(Exception):
                    loop.run_until_complete(target.llm.aclose())
            loop.close()


class Pool:
    """``count`` worker processes for a whole bench, each with its own pipe."""

    def __init__(self, count: int, config: BenchConfig, local: tuple[str, str] | None) -> None:
        ctx = mp.get_context("spawn")  # never fork a process with LiveKit's threads in it
        self.tickets = Tickets(ctx)
        self.requests = config.requests
        self.broken = False
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, daemon=True, name="lkmetrics-bench-worker",
                               args=(child, self.tickets.reader, config, local))
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _failed(self, message: str) -> LkmetricsError:
        self.broken = True
        self.tickets.drain()
        return LkmetricsError(f"a bench llm worker failed: {message}")

    def _next(self, waiting: set[int]) -> list[tuple[int, Any]]:
        """The messages that arrived from the workers in ``waiting`` (waits at most POLL).
        Every worker's death is watched, not only of those still at work: any worker that
        died with nothing left to say ends the run at once."""
        by_conn = {self.conns[k]: k for k in waiting}
        by_sentinel: dict[Any, int] = {p.sentinel: k for k, p in enumerate(self.procs)}
        ready = wait([*by_conn, *by_sentinel], POLL)
        messages: list[tuple[int, Any]] = []
        for obj in ready:
            if obj in by_conn:
                k = by_conn[obj]
                try:
                    messages.append((k, obj.recv()))
                except (EOFError, OSError):  # its end closed, or reset as it died
                    raise self._failed("the worker process exited") from None
        for obj in ready:
            dead = by_sentinel.get(obj)
            if dead is not None and not (dead in waiting and self.conns[dead].poll()):
                code = self.procs[dead].exitcode
                raise self._failed(f"the worker process exited with code {code}")
        return messages

    def _send(self, k: int, message: Any) -> None:
        try:
            self.conns[k].send(message)
        except OSError:  # its end is gone: it died between two runs
            code = self.procs[k].exitcode
            raise self._failed(f"the worker process exited with code {code}") from None

    def run(self, model: str, slots: list[int], progress: Progress | None,
            label: str) -> list[Any]:
        """One run: every worker's (start, end, results, metrics); blocks until all are in,
        and never longer than a worker lives."""
        if self.broken:
            raise LkmetricsError("a bench llm worker failed earlier in this bench")
        for k, share in enumerate(slots):
            self._send(k, (model, share))
        active = {k for k, share in enumerate(slots) if share > 0}
        replies: dict[int, Any] = {}
        ready: set[int] = set()
        waiting = set(range(len(self.conns)))
        started = False
        while waiting:
            for k, message in self._next(waiting):
                kind = message[0]
                if kind == "ready":
                    ready.add(k)
                elif kind == "done":
                    if progress is not None:
                        progress(label)
                elif kind == "error":
                    raise self._failed(message[1])
                else:
                    replies[k] = message
                    waiting.discard(k)
            if not started and ready >= active:
                self.tickets.feed(self.requests, len(active))
                for k in active:
                    self._send(k, "go")
                started = True
        return [replies[k][1] for k in range(len(self.conns))]

    def close(self) -> None:
        if self.broken:  # the rest may be mid-run: there is nothing to wait for
            for proc in self.procs:
                if proc.is_alive():
                    proc.kill()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self.conns:
            conn.close()
        self.tickets.reader.close()
        self.tickets.writer.close()


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
