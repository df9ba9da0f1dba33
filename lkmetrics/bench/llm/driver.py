"""``bench llm``'s LiveKit side: each model's LLM object, timed streamed requests, recording.

Requests go through LiveKit's own LLM classes (``inference.LLM``, or the OpenAI plugin for
``--llm-base-url`` and ``--llm local``), with retries off, so a failed request is counted and
its latency is not hidden behind a retry. TTFT and the inter-token gaps are taken at each
content chunk inside the stream's iteration; LiveKit's own ``LLMMetrics`` for each request
are recorded in the store as the run's ``llm`` records. Imported only when a bench runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import APIConnectOptions, inference
from livekit.agents import __version__ as livekit_agents_version
from livekit.agents import llm as lk_llm
from livekit.agents.metrics import LLMMetrics
from livekit.plugins import openai

from lkmetrics.agent.signals import Stop, status_of
from lkmetrics.bench.llm.core import BenchConfig, Prompt, RequestResult, RunResult
from lkmetrics.config.urls import strip_userinfo
from lkmetrics.pipeline import Pipeline
from lkmetrics.records import Record, convert_metric
from lkmetrics.version import __version__

# no retries: a retry hides the failure and adds its wait to the request's latency
NO_RETRY = APIConnectOptions(max_retry=0)
COMMAND = "bench llm"

Progress = Callable[[str], None]  # called with the run's label after each counted request


@dataclass
class Target:
    """One model to benchmark and the LiveKit LLM that reaches it."""

    model: str  # as given on the command line
    llm: lk_llm.LLM[Any]
    provider: str
    base_url: str | None
    # the request fields that cap the output: OpenAI's current name for the cloud; the older
    # max_tokens too for any other OpenAI-compatible server (llama-cpp-python's reads only
    # that one, and ignored the cap before), and only it for the local server
    max_tokens_fields: tuple[str, ...] = ("max_completion_tokens",)

    def cap(self, max_tokens: int) -> dict[str, int]:
        return dict.fromkeys(self.max_tokens_fields, max_tokens)


def model_name(model: str) -> str:
    """The model part of ``provider/model`` (what an OpenAI-compatible server expects)."""
    return model.split("/", 1)[1] if "/" in model else model


def build_target(model: str, base_url: str | None, local: tuple[str, str] | None) -> Target:
    """``inference.LLM`` for PROVIDER/MODEL, the OpenAI plugin for a base URL or ``local``."""
    if model == "local":
        assert local is not None
        url, name = local
        llm: lk_llm.LLM[Any] = openai.LLM(model=name, base_url=url, api_key="no-key")
        return Target(model, llm, "local", url, max_tokens_fields=("max_tokens",))
    if base_url is not None:
        llm = openai.LLM(model=model_name(model), base_url=base_url,
                         api_key=os.environ.get("OPENAI_API_KEY") or "no-key")
        return Target(model, llm, llm.provider, base_url,
                      max_tokens_fields=("max_completion_tokens", "max_tokens"))
    llm = inference.LLM(model=model)
    return Target(model, llm, llm.provider, None)


def chat_context(prompt: Prompt) -> lk_llm.ChatContext:
    ctx = lk_llm.ChatContext.empty()
    for role, content in prompt:
        ctx.add_message(role=role, content=content)  # type: ignore[arg-type]
    return ctx


def error_text(err: BaseException) -> str:
    """One line for a failed request: LiveKit's API error message (with the HTTP status),
    else the exception's text, else its type."""
    from lkmetrics.errors import cause_first

    message = getattr(err, "message", None)
    text = " ".join(str(message if isinstance(message, str) and message else err).split())
    status = getattr(err, "status_code", None)
    if isinstance(status, int) and status > 0 and str(status) not in text:
        text = f"HTTP {status}: {text}"
    return cause_first(err, text or type(err).__name__)


async def timed_request(llm: lk_llm.LLM[Any], ctx: lk_llm.ChatContext,
                        extra: dict[str, Any], deadline: float | None = None) -> RequestResult:
    """One streamed request: TTFT and each gap measured at the content chunks as they arrive.
    The whole request (connection, every chunk, the end of the stream) must be over within
    ``deadline`` seconds, else it is an error naming the deadline."""
    result = RequestResult()
    chunks = 0
    completion_tokens: int | None = None
    last = 0.0
    sent = time.perf_counter()

    async def stream_all() -> None:
        nonlocal chunks, completion_tokens, last
        async with llm.chat(chat_ctx=ctx, conn_options=NO_RETRY,
                            extra_kwargs=extra) as stream:
            async for chunk in stream:
                now = time.perf_counter()
                if chunk.delta is not None and chunk.delta.content:
                    if chunks == 0:
                        result.ttft = now - sent
                    else:
                        result.itl.append(now - last)
                    last = now
                    chunks += 1
                if chunk.usage is not None:
                    completion_tokens = chunk.usage.completion_tokens

    try:
        await asyncio.wait_for(stream_all(), deadline)
        result.latency = time.perf_counter() - sent
    except asyncio.CancelledError:
        raise
    except asyncio.TimeoutError:
        got = (f"{chunks} content chunk{'' if chunks == 1 else 's'} received"
               if chunks else "no content received")
        result.error = (f"the request did not finish within its {deadline:g} s deadline "
                        f"({got}; --request-timeout sets it)")
        return result
    except Exception as e:
        result.error = error_text(e)
        return result
    if chunks == 0:
        result.error = "the response streamed no content"
        return result
    from lkmetrics.records import TOKEN_MAX

    # an impossible count (a gateway reporting -5 or 2^62) is not used: the chunks are counted
    valid = completion_tokens is not None and 0 < completion_tokens <= TOKEN_MAX
    result.output_tokens = completion_tokens if valid and completion_tokens else chunks
    return result


def session_record(model: str, base_url: str | None, concurrency: int, config: BenchConfig,
                   bench_id: str, workers: int = 1) -> Record:
    return {
        "kind": "session", "command": COMMAND, "stt": None, "llm": model, "tts": None,
        "voice": None, "llm_base_url": strip_userinfo(base_url), "bench_id": bench_id,
        "concurrency": concurrency, "requests": config.requests, "warmup": config.warmup,
        "max_tokens": config.max_tokens, "workers": workers, "host": platform.node(),
        "pid": os.getpid(), "lkmetrics_version": __version__,
        "livekit_agents_version": livekit_agents_version,
    }


class _Recorder:
    """One run's session in the store and the fleet writers: a Pipeline of its own (so each
    session gets its own exit status). The LLM's handler only enqueues (O(1) on the loop)."""

    def __init__(self, db: Path | None, session_info: Record, *, record: bool,
                 fleet: Sequence[Any] = ()) -> None:
        from lkmetrics.agent.capture import new_session_id

        self.session_id = new_session_id()
        self.writer = None
        writers: list[Any] = list(fleet)
        if record:
            from lkmetrics.store import StoreWriter, default_db_path

            self.writer = StoreWriter(db or default_db_path())
            writers.append(self.writer)
        self.pipeline = Pipeline(writers)
        self.pipeline.put(self.session_id, session_info)

    def put_metric(self, metric: LLMMetrics) -> None:
        self.pipeline.put(self.session_id, metric, convert_metric)

    def put_record(self, record: Record, t: float) -> None:
        """A record converted elsewhere (a worker process), stamped with its wall time there."""
        self.pipeline.enqueue((self.session_id, record, None, t))

    def close(self, ok: bool, status: str | None = None) -> list[str]:
        """End the session, drain and close; the write errors, if any. Blocks: off the loop.
        ``status``: the session's exit status when not "ok" or "error" by ``ok``."""
        self.pipeline.end_session(self.session_id)
        if self.writer is not None:
            self.writer.exit_status = status or ("ok" if ok else "error")
        self.pipeline.close()
        return list(self.pipeline.errors) + (list(self.writer.errors) if self.writer else [])


async def warm_up(target: Target, config: BenchConfig,
                  contexts: list[lk_llm.ChatContext]) -> None:
    """The warm-up requests (not counted, not recorded); then a full collection, frozen: a
    full collection over the large heap LiveKit's imports leave is a pause of tens of ms in
    the middle of a run's first burst."""
    extra = target.cap(config.max_tokens)
    for i in range(config.warmup):
        await timed_request(target.llm, contexts[i % len(contexts)], extra,
                            config.request_timeout)
    gc.collect()
    gc.freeze()


async def send_requests(target: Target, slots: int, config: BenchConfig,
                        contexts: list[lk_llm.ChatContext], take: Callable[[], int | None],
                        done: Callable[[int, RequestResult], None]) -> None:
    """``slots`` requests in flight at once; each takes the next request index from
    ``take`` (None: no more) and hands its result to ``done``."""
    extra = target.cap(config.max_tokens)

    async def slot() -> None:
        while (i := take()) is not None:
            done(i, await timed_request(target.llm, contexts[i % len(contexts)], extra,
                                        config.request_timeout))

    await asyncio.gather(*(slot() for _ in range(slots)))


def run_label(target: Target, concurrency: int) -> str:
    return f"{target.model} @ {concurrency}"


async def run_target(target: Target, concurrency: int, config: BenchConfig,
                     contexts: list[lk_llm.ChatContext], recorder: _Recorder | None,
                     progress: Progress | None
                     ) -> tuple[list[RequestResult], float, list[Record]]:
    """In this process: warm up, then ``config.requests`` requests with ``concurrency`` in
    flight at once; the results, the wall time and LiveKit's LLMMetrics as records."""
    await warm_up(target, config, contexts)
    label = run_label(target, concurrency)

    def on_metrics(m: LLMMetrics) -> None:  # on the loop: append and enqueue only
        metrics.append(m)
        if recorder is not None:
            recorder.put_metric(m)

    metrics: list[LLMMetrics] = []
    n = config.requests
    results: list[RequestResult] = [RequestResult() for _ in range(n)]
    taken = 0

    def take() -> int | None:
        nonlocal taken
        if taken >= n:
            return None
        taken += 1
        return taken - 1

    def done(i: int, result: RequestResult) -> None:
        results[i] = result
        if progress is not None:
            progress(label)

    target.llm.on("metrics_collected", on_metrics)
    try:
        start = time.perf_counter()
        await send_requests(target, min(concurrency, n), config, contexts, take, done)
        wall = time.perf_counter() - start
    finally:
        target.llm.off("metrics_collected", on_metrics)
    return results, wall, [convert_metric(m) for m in metrics]


async def in_process(config: BenchConfig, bench: BenchRun) -> None:
    contexts = [chat_context(p) for p in config.prompts]
    for model in config.models:
        target = build_target(model, config.base_url, bench.local)
        try:
            for concurrency in config.concurrency:
                recorder = await asyncio.to_thread(bench.open_session, target.model,
                                                   target.base_url, concurrency)
                try:
                    results, wall, metrics = await run_target(target, concurrency, config,
                                                              contexts, recorder, bench.progress)
                except BaseException as e:
                    abandon(recorder, e, bench.stop)
                    raise
                run = RunResult(target.model, target.provider, concurrency, results, wall,
                                metrics=metrics)
                await asyncio.to_thread(bench.finish, run, recorder)
        finally:
            await target.llm.aclose()


def abandon(recorder: _Recorder | None, error: BaseException, stop: Stop | None) -> None:
    """Close the session of a run that did not finish, with the status ``error`` or the
    signal that stopped it gives; what it recorded so far is kept."""
    if recorder is not None:
        recorder.close(False, status_of(error, stop))


@dataclass
class BenchRun:
    """One bench invocation: its id, where its sessions go, and the runs done so far."""

    config: BenchConfig
    bench_id: str
    db: Path | None
    record: bool
    fleet: Sequence[Any] = ()
    progress: Progress | None = None
    local: tuple[str, str] | None = None
    stop: Stop | None = None  # which signal, if any, stopped the bench
    runs: list[RunResult] = field(default_factory=list)
    write_errors: list[str] = field(default_factory=list)

    def open_session(self, model: str, base_url: str | None, concurrency: int,
                     workers: int = 1) -> _Recorder | None:
        """The run's session (store and fleet writers), or None when neither is asked."""
        if not self.record and not self.fleet:
            return None
        info = session_record(model, base_url, concurrency, self.config, self.bench_id,
                              workers)
        return _Recorder(self.db, info, record=self.record, fleet=self.fleet)

    def finish(self, run: RunResult, recorder: _Recorder | None) -> None:
        """Close the run's session (blocks: off the loop) and keep the run."""
        if recorder is not None:
            if self.record:
                run.session_id = recorder.session_id
            self.write_errors.extend(recorder.close(run.errors == 0))
        self.runs.append(run)


@contextlib.contextmanager
def quiet_livekit() -> Iterator[None]:
    """Failed requests are counted and shown once; LiveKit's per-request logs would repeat
    them for every request, so its loggers only pass critical messages while a bench runs."""
    loggers = [logging.getLogger(name) for name in ("livekit", "livekit.agents",
                                                     "livekit.plugins.openai", "openai",
                                                     "httpx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
