"""``lkmetrics.instrument(session)``: today's capture on an AgentSession of an agent that
LiveKit's own CLI runs (``python agent.py start|dev|console``), into a store, a JSON-lines file
and the fleet writers shared by every session of the process.

Only imported from inside an agent, where livekit is already loaded. The handlers it adds run
on the agent's loop and only enqueue (:class:`~lkmetrics.agent.capture.Capture`); writing
happens on the pipeline's thread. A process keeps one pipeline per set of options, opened by
the first session that asks for it and closed (summaries written, the store committed) when its
last session ends: at the job's shutdown, at the session's close, or at the latest when the
interpreter exits (Ctrl-C included).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lkmetrics.agent.capture import Capture
from lkmetrics.errors import UsageError
from lkmetrics.pipeline import Pipeline, Writer
from lkmetrics.records import SessionBody
from lkmetrics.version import __version__

COMMAND = "instrument"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STAGES = ("stt", "llm", "tts", "vad")


@dataclass(frozen=True)
class Options:
    """What ``instrument`` was asked for, validated; equal options share one pipeline."""

    output: Path | None
    db: Path | None
    prometheus_host: str
    prometheus_port: int | None
    otlp: str | None


def _fleet_words(message: str) -> str:
    """A fleet error message in the words of the function's arguments, not the CLI's flags."""
    for flag, arg in (("--prometheus-port", "prometheus_port"),
                      ("--prometheus-host", "prometheus_host"), ("--otlp", "otlp")):
        message = message.replace(flag, arg)
    return message


def _path(name: str, value: object) -> Path | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | os.PathLike) or not str(value):
        raise UsageError(f"instrument(): {name} expects a file path such as 'metrics.jsonl' "
                         f"(got {value!r}).")
    path = Path(os.fsdecode(value)).expanduser().absolute()
    if path.is_dir():
        raise UsageError(f"instrument(): {name}={str(value)!r} is a directory; give a file path.")
    return path


def check_options(*, output: object, db: object, record: object, prometheus_port: object,
                  prometheus_host: object, otlp: object) -> Options:
    """Validate every argument before anything opens; raises UsageError naming the fix."""
    if not isinstance(record, bool):
        raise UsageError(f"instrument(): record expects True or False (got {record!r}).")
    out_path, db_path = _path("output", output), _path("db", db)
    if db_path is not None and not record:
        raise UsageError("instrument(): db is given but record=False; drop one of them.")
    if prometheus_port is not None and (isinstance(prometheus_port, bool)
                                        or not isinstance(prometheus_port, int)):
        raise UsageError("instrument(): prometheus_port expects a port number such as 9464 "
                         f"(got {prometheus_port!r}).")
    if not isinstance(prometheus_host, str) or not prometheus_host:
        raise UsageError("instrument(): prometheus_host expects an address such as "
                         f"'127.0.0.1' or '0.0.0.0' (got {prometheus_host!r}).")
    if otlp is not None and not isinstance(otlp, str):
        raise UsageError("instrument(): otlp expects the URL of an OTLP/HTTP collector such as "
                         f"'http://127.0.0.1:4318' (got {otlp!r}).")
    from lkmetrics.fleet import check_fleet_options

    try:
        url = check_fleet_options(prometheus_port, otlp)
    except UsageError as e:
        raise UsageError("instrument(): " + _fleet_words(str(e))) from None
    if out_path is None and not record and prometheus_port is None and url is None:
        raise UsageError("instrument(): nothing to write with output=None and record=False; "
                         "give output='metrics.jsonl', keep record=True, or set "
                         "prometheus_port or otlp.")
    if record and db_path is None:
        from lkmetrics.store import default_db_path

        db_path = default_db_path()
    return Options(out_path, db_path, prometheus_host, prometheus_port, url)


# -- the process's pipelines, shared by its sessions --


@dataclass
class Shared:
    """One pipeline and its writers, with the sessions using it."""

    options: Options
    pipeline: Pipeline
    store: Any = None
    closers: list[Any] = field(default_factory=list)
    sessions: int = 0


_lock = threading.Lock()
_shared: dict[Options, Shared] = {}
_instrumented: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_atexit_registered = False


def _open_prometheus(opts: Options, closers: list[Any]) -> Writer:
    """The Prometheus writer. With ``PROMETHEUS_MULTIPROC_DIR`` set (LiveKit's
    ``AgentServer(prometheus_multiproc_dir=...)``) every job process's series go to that
    directory and one endpoint serves them all: LiveKit's worker when the port is its
    ``prometheus_port``, else the first job process to bind it. Without it, this process
    serves its own series, and a second process asking for the port gets a UsageError."""
    from lkmetrics.fleet import PrometheusWriter

    assert opts.prometheus_port is not None
    writer = PrometheusWriter()
    if not os.environ.get(MULTIPROC_ENV):
        try:
            writer.serve(opts.prometheus_host, opts.prometheus_port)
        except UsageError as e:
            raise UsageError(
                "instrument(): " + _fleet_words(str(e)) + " Several job processes share one "
                "port through prometheus_client's multiprocess mode: give the AgentServer "
                f"prometheus_port={opts.prometheus_port} and prometheus_multiproc_dir=DIR."
            ) from None
        return writer
    import errno

    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    writer.registry = registry  # what this process serves and exposes: every process's series
    try:
        server, _thread = start_http_server(opts.prometheus_port, addr=opts.prometheus_host,
                                            registry=registry)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:  # in use: the worker or a sibling serves the directory
            raise UsageError(f"instrument(): prometheus_port {opts.prometheus_port}: cannot "
                             f"listen on {opts.prometheus_host} ({e.strerror or e}).") from None
    else:
        def shutdown() -> None:
            server.shutdown()
            server.server_close()

        closers.append(shutdown)
    return writer


def _open(opts: Options) -> Shared:
    """The writers asked for, opened in the order the CLI opens them; all or nothing."""
    writers: list[Writer] = []
    closers: list[Any] = []
    store = None
    try:
        if opts.output is not None:
            from lkmetrics.render.append import append_writer

            try:
                writers.append(append_writer(opts.output))
            except OSError as e:
                raise UsageError(f"instrument(): cannot write output={str(opts.output)!r}: "
                                 f"{e.strerror}.") from None
        if opts.prometheus_port is not None:
            writers.append(_open_prometheus(opts, closers))
        if opts.otlp is not None:
            from lkmetrics.fleet import OtlpWriter

            writers.append(OtlpWriter(opts.otlp))
        if opts.db is not None:
            from lkmetrics.store import StoreWriter

            store = StoreWriter(opts.db)
            writers.append(store)
    except BaseException:
        for w in writers:
            with contextlib.suppress(Exception):
                w.close()
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        raise
    return Shared(opts, Pipeline(writers), store=store, closers=closers)


def instrument_pipeline(opts: Options) -> Shared:
    """The process's pipeline for ``opts`` (opened by its first session); pair with
    :func:`release`."""
    global _atexit_registered
    with _lock:
        shared = _shared.get(opts)
        if shared is None:
            shared = _shared[opts] = _open(opts)
            if not _atexit_registered:
                atexit.register(close_all)
                _atexit_registered = True
        shared.sessions += 1
        return shared


def _close(shared: Shared) -> None:
    shared.pipeline.close()
    for close in shared.closers:
        with contextlib.suppress(Exception):
            close()
    if shared.store is not None and shared.store.errors:
        import logging

        for message in shared.store.errors[:5]:
            logging.getLogger("lkmetrics").warning("could not record: %s", message)


def release(shared: Shared) -> None:
    """One session is done with ``shared``; the last one closes it. Blocks: never on the loop.
    The lock is held while closing, so an exiting interpreter waits for the summaries."""
    with _lock:
        shared.sessions -= 1
        if shared.sessions > 0 or _shared.get(shared.options) is not shared:
            return
        del _shared[shared.options]
        _close(shared)


def close_all() -> None:
    """Write every open session's summary and close every writer (at interpreter exit)."""
    with _lock:
        for shared in list(_shared.values()):
            with contextlib.suppress(Exception):
                _close(shared)
        _shared.clear()


# -- one session --


def model_label(component: Any) -> str | None:
    """``provider/model`` of a component, as the built-in agent's session records name it."""
    if component is None:
        return None
    model = str(getattr(component, "model", "") or "")
    provider = str(getattr(component, "provider", "") or "")
    if not model or model == "unknown":
        return provider if provider and provider != "unknown" else None
    if "/" in model or not provider or provider == "unknown":
        return model
    return f"{provider}/{model}"


def components(session: Any) -> dict[str, Any]:
    """The STT, LLM, TTS and VAD the session's current agent runs with: the agent's own where
    it sets one, else the session's."""
    from livekit.agents.utils import is_given

    try:
        agent = session.current_agent
    except RuntimeError:  # not started
        agent = None
    found: dict[str, Any] = {}
    for stage in STAGES:
        own = getattr(agent, stage, None) if agent is not None else None
        found[stage] = own if is_given(own) and own is not None else getattr(session, stage, None)
    return found


def session_body(parts: dict[str, Any], room: str | None) -> SessionBody:
    from livekit.agents import __version__ as livekit_agents_version

    info: SessionBody = {
        "kind": "session",
        "command": COMMAND,
        "stt": model_label(parts["stt"]),
        "llm": model_label(parts["llm"]) or "unknown",
        "tts": model_label(parts["tts"]),
        "voice": None,
        "llm_base_url": None,
        "llm_model": None,
        "host": platform.node(),
        "pid": os.getpid(),
        "lkmetrics_version": __version__,
        "livekit_agents_version": livekit_agents_version,
    }
    if room:
        info["room"] = room
    return info


class Instrumented:
    """The capture of one session and the shared pipeline it writes into."""

    def __init__(self, session: Any, shared: Shared, room: str | None) -> None:
        self.session = session
        self.shared = shared
        self.capture = Capture(shared.pipeline)
        self.room = room
        self._attached = False
        self._released = False
        self._release_lock = threading.Lock()

    @property
    def session_id(self) -> str:
        return self.capture.session_id

    def attach(self) -> None:
        """After ``session.start``: the session record, then LiveKit's events. Loop-side."""
        if self._attached:
            return
        self._attached = True
        parts = components(self.session)
        self.capture.start(session_body(parts, self.room))
        self.capture.attach(self.session, [c for c in parts.values() if hasattr(c, "on")])
        self.session.on("close", self._on_close)

    def on_state(self, ev: Any) -> None:
        if getattr(ev, "new_state", None) != "initializing":
            self.session.off("agent_state_changed", self.on_state)
            self.attach()

    def _on_close(self, _ev: Any) -> None:
        # Capture's own close handler ended the session; the release blocks, so not here
        threading.Thread(target=self.release, name="lkmetrics-release").start()

    def release(self) -> None:
        """Let the pipeline go (closing it if this was its last session). Idempotent."""
        with self._release_lock:
            if self._released:
                return
            self._released = True
        release(self.shared)

    async def on_shutdown(self) -> None:
        """The job's shutdown callback: end the capture, write its records, let go."""
        import asyncio

        self.session.off("agent_state_changed", self.on_state)
        if not self._released:
            self.capture.end()  # O(1) on the loop: the summary follows what was captured
        await asyncio.to_thread(self.release)


def instrument(session: Any, *, output: str | os.PathLike[str] | None = None,
               db: str | os.PathLike[str] | None = None, record: bool = True,
               prometheus_port: int | None = None, prometheus_host: str = "127.0.0.1",
               otlp: str | None = None) -> str:
    """See :func:`lkmetrics.instrument`."""
    from livekit.agents import AgentSession, get_job_context

    if not isinstance(session, AgentSession):
        raise UsageError("instrument() expects the AgentSession your entrypoint creates, e.g. "
                         f"lkmetrics.instrument(session) (got {type(session).__name__}).")
    opts = check_options(output=output, db=db, record=record, prometheus_port=prometheus_port,
                         prometheus_host=prometheus_host, otlp=otlp)
    with _lock:
        if session in _instrumented:
            raise UsageError(
                f"instrument() was already called on this AgentSession (recorded as "
                f"{_instrumented[session]}); call it once per session, before session.start().")
        _instrumented[session] = "pending"
    try:
        shared = instrument_pipeline(opts)
    except BaseException:
        with _lock:
            _instrumented.pop(session, None)
        raise
    ctx = get_job_context(required=False)
    room = getattr(getattr(ctx, "room", None), "name", None) if ctx is not None else None
    inst = Instrumented(session, shared, room)
    with _lock:
        _instrumented[session] = inst.session_id
    if ctx is not None:
        ctx.add_shutdown_callback(inst.on_shutdown)
    if session.agent_state == "initializing":
        session.on("agent_state_changed", inst.on_state)
    else:  # already started: capture from now on
        inst.attach()
    return inst.session_id
