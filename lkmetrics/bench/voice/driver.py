"""``bench voice``'s LiveKit side: the models loaded once, N simulated callers per run on one
event loop, their records collected and recorded. Imported only when a bench runs.

Each caller is :func:`lkmetrics.simulate.run.simulate` (its own AgentSession, paced
microphone and speaker, Capture); the callers of a run share the loaded models the way
``lkmetrics.agent.server`` shares them between the jobs of one process (one Silero VAD,
Whisper and Piper loaded once, each caller's STT/LLM/TTS objects built over them; for
``--llm local`` one llama.cpp server), and run concurrently on one event loop.

With ``--agent``, each caller is :func:`lkmetrics.simulate.user.simulate_user` instead: the
user's entrypoint under its own fake job, the components the command line names replacing
the agent's own (the replacement lines printed once for the whole bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lkmetrics.agent.server import Components, build_components, load_models
from lkmetrics.agent.signals import Stop, status_of
from lkmetrics.agent.user import UserAgent
from lkmetrics.bench.voice.core import COMMAND, OWN, VoiceConfig, VoiceRun
from lkmetrics.config.settings import AgentSettings
from lkmetrics.errors import cause_first
from lkmetrics.pipeline import FirstError, Pipeline
from lkmetrics.records import Record
from lkmetrics.simulate.caller import Line, TurnResult
from lkmetrics.simulate.run import simulate

# builds one caller's components for a stack (called on the run's event loop)
Factory = Callable[[AgentSettings], Components]
Progress = Callable[[str], None]  # called with the run's label after each turn
KEPT = frozenset({"session", "turn", "eou", "stt", "llm", "tts", "tool"})
STAGES = ("stt", "llm", "tts")


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


class SharedModels:
    """The default factory: each model loaded once for the whole bench, as a server's setup
    loads it once per process; every caller gets its own plugin objects over them."""

    def __init__(self) -> None:
        self.userdata: dict[Any, Any] = {}
        self.vad_silence: float | None = None  # the loaded VAD's min_silence_duration

    def load(self, settings: AgentSettings) -> dict[Any, Any]:
        """The loaded models ``settings`` needs (loaded now if not yet)."""
        needed = {"vad"} | ({"whisper"} if settings.stt == "local" else set()) | (
            {"piper"} if settings.tts == "local" else set())
        if self.vad_silence != settings.vad_min_silence and "vad" in self.userdata:
            # --sweep min_silence_duration: the VAD loaded with this run's value
            from lkmetrics.agent.server import load_vad

            self.userdata["vad"] = load_vad(settings)
        self.vad_silence = settings.vad_min_silence
        if needed - set(self.userdata):
            loaded: dict[Any, Any] = {}
            load_models(settings, loaded)
            for key, value in loaded.items():
                self.userdata.setdefault(key, value)
        return self.userdata

    def __call__(self, settings: AgentSettings) -> Components:
        return build_components(settings, self.load(settings))


def shared_models() -> Factory:
    return SharedModels()


class OncePerBench:
    """Prints each override line once for the whole bench (every caller's agent makes it)."""

    def __init__(self) -> None:
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            if line in self._said:
                return
            self._said.add(line)
        print(line, file=sys.stderr, flush=True)


@dataclass
class UserRun:
    """--agent: the user's agent, the loaded models its replacements are built over, and where
    the override lines go."""

    user: UserAgent
    models: SharedModels = field(default_factory=SharedModels)
    say: Callable[[str], None] = field(default_factory=OncePerBench)


async def _callers(settings: AgentSettings, factory: Factory, pipeline: Pipeline,
                   utterances: Sequence[np.ndarray | Line], concurrency: int,
                   config: VoiceConfig, bench_id: str, on_turn: Callable[[TurnResult], None],
                   user: UserRun | None = None, backchannel: np.ndarray | None = None
                   ) -> list[list[TurnResult] | BaseException]:
    async def caller(index: int) -> list[TurnResult]:
        info = {"bench_id": bench_id, "concurrency": concurrency, "caller": index}
        if user is not None:
            from lkmetrics.simulate.user import simulate_user

            return await simulate_user(settings, user.user, user.models.load(settings),
                                       pipeline, utterances, pause=config.pause,
                                       timeout=config.timeout, info=info, on_turn=on_turn,
                                       say=user.say, behaviour=config.behaviour,
                                       backchannel=backchannel)
        components = factory(settings)
        return await simulate(settings, components, pipeline, utterances, pause=config.pause,
                              timeout=config.timeout, info=info, on_turn=on_turn,
                              behaviour=config.behaviour, backchannel=backchannel)

    return await asyncio.gather(*(caller(i) for i in range(1, concurrency + 1)),
                                return_exceptions=True)


def run_one(settings: AgentSettings, concurrency: int, config: VoiceConfig,
            utterances: Sequence[np.ndarray | Line], factory: Factory, bench_id: str, *,
            db: Path | None, record: bool, progress: Progress | None,
            fleet: Sequence[Any] = (), stop: Stop | None = None,
            user: UserRun | None = None, backchannel: np.ndarray | None = None
            ) -> tuple[VoiceRun, list[str]]:
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
                                        config, bench_id, on_turn, user, backchannel))
    except BaseException as e:  # Ctrl-C, SIGTERM: what was captured is still written
        if store_writer is not None:
            store_writer.exit_status = status_of(e, stop)
        pipeline.close()
        raise
    wall = time.perf_counter() - t0
    # what the run's callers left open (their providers' HTTP connections, each fake job's
    # temp folder) goes now, as it would with a job process's exit, not at the interpreter's
    # exit: under a low `ulimit -n` the next run, or the exit's clean-up, found no free file
    gc.collect()
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
    sessions = [r for r in collector.records if r.get("kind") == "session"]
    run.session_ids = [str(r["session_id"]) for r in sessions]
    if user is not None:
        name_the_agent(run, settings, user.user, sessions)
    write_errors = list(pipeline.errors) + (list(store_writer.errors) if store_writer else [])
    return run, write_errors


def name_the_agent(run: VoiceRun, settings: AgentSettings, user: UserAgent,
                   sessions: Sequence[Record]) -> None:
    """--agent: the run names the agent, and each stage not replaced by the agent's own
    component as its sessions recorded it (e.g. deepgram/nova-3)."""
    run.agent, run.agent_target = settings.agent, user.resolved
    for stage in STAGES:
        if stage in settings.replace:
            continue
        own = sorted({str(r.get(stage)) for r in sessions if r.get(stage) is not None})
        setattr(run, stage, " + ".join(own) if own else OWN)


def variants(settings: AgentSettings, config: VoiceConfig
             ) -> list[tuple[AgentSettings, tuple[str, float] | None]]:
    """A stack as it runs: once, or with --sweep once per value (its settings at it)."""
    if config.sweep is None:
        return [(settings, None)]
    sweep = config.sweep
    return [(sweep.applied(settings, v), (sweep.name, v)) for v in sweep.values]


def run(config: VoiceConfig, bench_id: str, *, db: Path | None, record: bool,
        progress: Progress | None = None, factory: Factory | None = None,
        fleet: Sequence[Any] = (), stop: Stop | None = None, user: UserAgent | None = None,
        done: list[VoiceRun] | None = None) -> tuple[list[VoiceRun], list[str]]:
    """Every combination at every concurrency, in turn; the runs and any write errors.
    ``user``: --agent's agent (loaded), run by every caller instead of the built-in one.
    ``done`` gets each run as it finishes (what is left of a bench a signal stops)."""
    from lkmetrics.simulate.caller import lines_of
    from lkmetrics.simulate.script import backchannel_pcm, load_utterances, scenario_utterances

    script = (scenario_utterances(config.scenario) if config.scenario is not None
              else load_utterances(config.say, 1))
    utterances = lines_of(script) * config.repeat
    backchannel = backchannel_pcm(script, config.behaviour)
    runs: list[VoiceRun] = done if done is not None else []
    write_errors: list[str] = []
    with contextlib.ExitStack() as stack:
        if any(s.llm == "local" for s in config.stacks):
            from lkmetrics.local.llm_server import start_local_llm

            url, model = start_local_llm(stack)  # one server for every caller and stack
            for s in config.stacks:
                if s.llm == "local":
                    s.llm_base_url, s.llm_model = url, model
        build = factory or shared_models()
        mine = UserRun(user) if user is not None else None
        for combination in config.stacks:
            combination.command = COMMAND
            for settings, swept in variants(combination, config):
                for concurrency in config.concurrency:
                    one, errs = run_one(settings, concurrency, config, utterances, build,
                                        bench_id, db=db, record=record, progress=progress,
                                        fleet=fleet, stop=stop, user=mine,
                                        backchannel=backchannel)
                    one.sweep = swept
                    runs.append(one)
                    write_errors.extend(errs)
    return runs, write_errors
