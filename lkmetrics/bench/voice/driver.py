"""``bench voice``'s LiveKit side: the models loaded once, N simulated callers per run on one
event loop, their records collected and recorded. Imported only when a bench runs.

Each caller is :func:`lkmetrics.simulate.run.simulate` (its own AgentSession, paced
microphone and speaker, Capture); the callers of a run share the loaded models the way
``lkmetrics.agent.server`` shares them between the jobs of one process (one Silero VAD,
Whisper and Piper loaded once, each caller's STT/LLM/TTS objects built over them; for
``--llm local`` one llama.cpp server), and run concurrently on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lkmetrics.agent.server import Components, build_components, load_models
from lkmetrics.agent.signals import Stop, status_of
from lkmetrics.bench.voice.core import COMMAND, VoiceConfig, VoiceRun
from lkmetrics.config import AgentSettings
from lkmetrics.errors import cause_first
from lkmetrics.pipeline import FirstError, Pipeline
from lkmetrics.records import Record
from lkmetrics.simulate.caller import TurnResult
from lkmetrics.simulate.run import simulate

# builds one caller's components for a stack (called on the run's event loop)
Factory = Callable[[AgentSettings], Components]
Progress = Callable[[str], None]  # called with the run's label after each turn
KEPT = frozenset({"session", "turn", "eou", "stt", "llm", "tts"})


class Collector:
    """A pipeline writer that keeps a run's session, turn and component records."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._lock = threading.Lock()

    def write(self, record: Record) -> None:
        if record.get("kind") in KEPT:
            with self._lock:
                self.records.append(record)

    def close(self) -> None:
        pass


def shared_models() -> Factory:
    """The default factory: each model loaded once for the whole bench, as a server's setup
    loads it once per process; every caller gets its own plugin objects over them."""
    userdata: dict[Any, Any] = {}

    def build(settings: AgentSettings) -> Components:
        needed = {"vad"} | ({"whisper"} if settings.stt == "local" else set()) | (
            {"piper"} if settings.tts == "local" else set())
        if needed - set(userdata):
            loaded: dict[Any, Any] = {}
            load_models(settings, loaded)
            for key, value in loaded.items():
                userdata.setdefault(key, value)
        return build_components(settings, userdata)

    return build


async def _callers(settings: AgentSettings, factory: Factory, pipeline: Pipeline,
                   utterances: Sequence[np.ndarray], concurrency: int, config: VoiceConfig,
                   bench_id: str, on_turn: Callable[[TurnResult], None]
                   ) -> list[list[TurnResult] | BaseException]:
    async def caller(index: int) -> list[TurnResult]:
        components = factory(settings)
        info = {"bench_id": bench_id, "concurrency": concurrency, "caller": index}
        return await simulate(settings, components, pipeline, utterances, pause=config.pause,
                              timeout=config.timeout, info=info, on_turn=on_turn)

    return await asyncio.gather(*(caller(i) for i in range(1, concurrency + 1)),
                                return_exceptions=True)


def run_one(settings: AgentSettings, concurrency: int, config: VoiceConfig,
            utterances: Sequence[np.ndarray], factory: Factory, bench_id: str, *,
            db: Path | None, record: bool, progress: Progress | None,
            fleet: Sequence[Any] = (), stop: Stop | None = None) -> tuple[VoiceRun, list[str]]:
    """One run: ``concurrency`` callers at once on a fresh event loop; blocks until done."""
    from lkmetrics.bench.voice.core import stack_label

    collector = Collector()
    first_error = FirstError()  # a turn that got no reply names the component that failed
    writers: list[Any] = [collector, first_error, *fleet]
    store_writer = None
    if record:
        from lkmetrics.store import StoreWriter, default_db_path

        store_writer = StoreWriter(db or default_db_path())
        writers.append(store_writer)
    pipeline = Pipeline(writers)
    label = f"{stack_label(settings)} @ {concurrency}"

    def on_turn(_: TurnResult) -> None:
        if progress is not None:
            progress(label)

    t0 = time.perf_counter()
    try:
        outcomes = asyncio.run(_callers(settings, factory, pipeline, utterances, concurrency,
                                        config, bench_id, on_turn))
    except BaseException as e:  # Ctrl-C, SIGTERM: what was captured is still written
        if store_writer is not None:
            store_writer.exit_status = status_of(e, stop)
        pipeline.close()
        raise
    wall = time.perf_counter() - t0
    pipeline.flush()
    errors: list[str] = []
    ok = 0
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            errors.append(cause_first(outcome, f"{type(outcome).__name__}: {outcome}"))
            continue
        ok += sum(1 for r in outcome if r.ok)
        errors.extend(f"turn {r.index}: "
                      f"{first_error.explain(r.error) if r.timed_out else r.error}"
                      for r in outcome if r.error)
    run = VoiceRun(stt=settings.stt, llm=settings.llm, tts=settings.tts,
                   concurrency=concurrency, planned=concurrency * len(utterances),
                   errors_seen=errors, records=[], wall_s=wall, turns_ok=ok)
    if store_writer is not None:
        store_writer.exit_status = "ok" if run.errors == 0 else "error"
    pipeline.close()
    run.records = [r for r in collector.records if r.get("kind") != "session"]
    run.session_ids = [str(r["session_id"]) for r in collector.records
                       if r.get("kind") == "session"]
    write_errors = list(pipeline.errors) + (list(store_writer.errors) if store_writer else [])
    return run, write_errors


def run(config: VoiceConfig, bench_id: str, *, db: Path | None, record: bool,
        progress: Progress | None = None, factory: Factory | None = None,
        fleet: Sequence[Any] = (), stop: Stop | None = None,
        ) -> tuple[list[VoiceRun], list[str]]:
    """Every combination at every concurrency, in turn; the runs and any write errors."""
    from lkmetrics.simulate.script import load_utterances

    utterances = [u.pcm for u in load_utterances(config.say, 1)] * config.repeat
    runs: list[VoiceRun] = []
    write_errors: list[str] = []
    with contextlib.ExitStack() as stack:
        if any(s.llm == "local" for s in config.stacks):
            from lkmetrics.local.llm_server import start_local_llm

            url, model = start_local_llm(stack)  # one server for every caller and stack
            for s in config.stacks:
                if s.llm == "local":
                    s.llm_base_url, s.llm_model = url, model
        build = factory or shared_models()
        for settings in config.stacks:
            settings.command = COMMAND
            for concurrency in config.concurrency:
                one, errs = run_one(settings, concurrency, config, utterances, build, bench_id,
                                    db=db, record=record, progress=progress, fleet=fleet,
                                    stop=stop)
                runs.append(one)
                write_errors.extend(errs)
    return runs, write_errors
