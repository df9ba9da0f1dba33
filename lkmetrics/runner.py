"""Runs an agent command: validate input, set up output, delegate to LiveKit's ``cli.run_app``.

Validation happens before livekit is imported, so bad input fails fast and cleanly.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lkmetrics.config import (
    SETTINGS_ENV,
    AgentSettings,
    Format,
    check_base_url,
    check_credentials,
    check_server_url,
    load_env_file,
    parse_model,
)
from lkmetrics.errors import UsageError
from lkmetrics.sink import JsonlWriter, Pipeline, Writer, data_stream_for_json

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical")
ROOM_COMMANDS = ("run", "dev", "connect")


def parse_format(value: str | None, *, stdout_isatty: bool) -> Format:
    if value is None or value == "":
        return Format.table if stdout_isatty else Format.json
    try:
        return Format(value.strip().lower())
    except ValueError:
        raise UsageError(
            f"--format must be one of table, json, none (got {value!r})."
        ) from None


def make_settings(command: str, *, stt: str, llm: str, tts: str, voice: str,
                  instructions: str, greet: bool, llm_base_url: str | None, local: bool,
                  show: list[str] | None) -> AgentSettings:
    """Validated agent settings from the command line (no livekit import)."""
    if local:
        stt, llm, tts = "local", "local", "local"
    settings = AgentSettings(
        stt=parse_model("--stt", stt, allow_none=True),
        llm=parse_model("--llm", llm, allow_none=False) or "local",
        tts=parse_model("--tts", tts, allow_none=True),
        voice=voice,
        instructions=instructions,
        greet=greet,
        llm_base_url=check_base_url(llm_base_url),
        command=command,
        show=[s.lower() for s in (show or [])],
    )
    if settings.llm == "local" and settings.llm_base_url is not None:
        raise UsageError("--llm local starts its own server; leave out --llm-base-url.")
    return settings


@dataclass
class Output:
    """The writers of one run and the pipeline feeding them."""

    fmt: Format
    writers: list[Writer] = field(default_factory=list)
    store: Any = None  # a store.StoreWriter when recording

    def pipeline(self) -> Pipeline:
        return Pipeline(self.writers)

    def close(self, pipeline: Pipeline, exit_code: int) -> None:
        """Drain the pipeline into the writers, record the exit status, report write errors."""
        if self.store is not None:
            self.store.exit_status = {0: "ok", 130: "interrupted"}.get(exit_code, "error")
        pipeline.close()
        errors = list(pipeline.errors) + list(getattr(self.store, "errors", []))
        for message in errors[:5]:
            print(f"lkmetrics: could not write a record: {message}", file=sys.stderr)


def open_output(fmt: Format, output: Path | None, show: list[str], *, db: Path | None,
                record: bool, console: Any = None) -> Output:
    """Writers for the format, ``--output`` and the store. Call before any livekit output."""
    out = Output(fmt)
    if output is not None:
        try:
            out.writers.append(JsonlWriter.append_to(output))
        except OSError as e:
            raise UsageError(f"cannot write --output {output}: {e.strerror}.") from None
    if record:
        from lkmetrics import store

        out.store = store.StoreWriter(db or store.default_db_path())
        out.writers.append(out.store)
    if fmt is Format.json:
        out.writers.insert(0, JsonlWriter(data_stream_for_json()))
    elif fmt is Format.table:
        from rich.console import Console

        from lkmetrics.render import TableWriter

        out.writers.insert(0, TableWriter(console or Console(), show))
    return out


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def _livekit_console() -> Any:
    """LiveKit's console Rich Console, so our tables and its live UI share one screen."""
    try:
        from livekit.agents.cli import _legacy

        return _legacy.AgentsConsole.get_instance().console
    except Exception:  # a LiveKit release without it: print on our own console
        return None


def prepare(command: str, *, stt: str, llm: str, tts: str, voice: str, instructions: str,
            greet: bool, llm_base_url: str | None, local: bool, fmt: str | None,
            env_file: Path | None, show: list[str] | None, url: str | None = None,
            api_key: str | None = None, api_secret: str | None = None
            ) -> tuple[AgentSettings, Format]:
    """Read .env, validate every option and credential; nothing here imports livekit."""
    load_env_file(env_file)
    out_format = parse_format(fmt, stdout_isatty=sys.stdout.isatty())
    settings = make_settings(command, stt=stt, llm=llm, tts=tts, voice=voice,
                             instructions=instructions, greet=greet, llm_base_url=llm_base_url,
                             local=local, show=show)
    # typer already read LIVEKIT_* from the environment; .env may have added them since
    url = url or os.environ.get("LIVEKIT_URL")
    api_key = api_key or os.environ.get("LIVEKIT_API_KEY")
    api_secret = api_secret or os.environ.get("LIVEKIT_API_SECRET")
    for var, value in (("LIVEKIT_URL", url), ("LIVEKIT_API_KEY", api_key),
                       ("LIVEKIT_API_SECRET", api_secret)):
        if value:
            os.environ[var] = value  # to LiveKit through the environment, never argv
    if command in ROOM_COMMANDS:
        check_server_url(url, command)
    check_credentials(settings)
    if settings.uses_local():
        from lkmetrics.local import require_local_extra

        require_local_extra()
        settings.turn_detection = "vad"  # offline: no turn-detector model to fetch
    return settings, out_format


def run_agent(command: str, livekit_args: list[str], *, fmt: str | None, output: Path | None,
              env_file: Path | None, show: list[str] | None, db: Path | None, no_record: bool,
              log_level: str, **agent_opts: Any) -> int:
    """Run ``command`` (console, run, dev, connect) through LiveKit's CLI. Returns the exit code."""
    if log_level.lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)} (got {log_level!r}).")
    settings, out_format = prepare(command, fmt=fmt, env_file=env_file, show=show, **agent_opts)
    with contextlib.ExitStack() as stack:
        if settings.llm == "local":
            settings.llm_base_url, settings.llm_model = start_local_llm(stack)
        return _delegate(command, livekit_args, settings, out_format, output, db,
                         record=not no_record, log_level=log_level)


def start_local_llm(stack: contextlib.ExitStack) -> tuple[str, str]:
    """Start the local llama.cpp server for the duration of ``stack``; its URL and model."""
    from rich.console import Console

    from lkmetrics.config import app_dir
    from lkmetrics.local.llm_server import LlamaServer

    err = Console(stderr=True)
    with err.status("Starting the local LLM server (SmolLM2-135M, llama.cpp)..."):
        server = stack.enter_context(LlamaServer(app_dir() / "logs"))
    err.print(f"[dim]local LLM server at {server.base_url}, pid {server.pid} "
              f"(log: {server.log_path})[/dim]", soft_wrap=True)
    return server.base_url, server.model


def _delegate(command: str, livekit_args: list[str], settings: AgentSettings, fmt: Format,
              output: Path | None, db: Path | None, *, record: bool, log_level: str) -> int:
    os.environ[SETTINGS_ENV] = settings.to_env()
    console = _livekit_console() if command == "console" and fmt is Format.table else None
    out = open_output(fmt, output, settings.show, db=db, record=record, console=console)
    pipeline = out.pipeline()

    import warnings

    from livekit.agents import cli

    # LiveKit's console shutdown schedules aclose() on a loop that is already closing
    warnings.filterwarnings("ignore", message="coroutine 'AgentServer.aclose' was never awaited")

    from lkmetrics import agent
    from lkmetrics.relay import RelayServer

    relay = RelayServer(pipeline)
    relay.export_env()
    agent.set_owner_pipeline(pipeline)
    code = 0
    try:
        with _argv(["lkmetrics", *livekit_args, "--log-level", log_level]):
            cli.run_app(agent.build_server())
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    finally:
        agent.set_owner_pipeline(None)
        relay.close()
        out.close(pipeline, code)
    return code


def run_simulation(*, say: list[str], turns: int, pause: float, timeout: float,
                   record_audio: Path | None, fmt: str | None, output: Path | None,
                   env_file: Path | None, show: list[str] | None, db: Path | None,
                   no_record: bool, **agent_opts: Any) -> int:
    """``lkmetrics simulate``: 0 when every turn got a reply, 1 when any timed out or failed."""
    if turns < 1:
        raise UsageError(f"--turns must be at least 1 (got {turns}).")
    if timeout <= 0 or pause < 0:
        raise UsageError("--timeout must be positive and --pause not negative.")
    settings, out_format = prepare("simulate", fmt=fmt, env_file=env_file, show=show,
                                   **agent_opts)
    if settings.stt is None:
        settings.turn_detection = "vad"  # nothing to detect turns from but the audio
    from rich.console import Console

    err = Console(stderr=True)
    with contextlib.ExitStack() as stack:
        with err.status("Loading LiveKit and the models..."):
            from lkmetrics import simulate as sim

            utterances = sim.load_utterances(say, turns)
        if settings.llm == "local":
            settings.llm_base_url, settings.llm_model = start_local_llm(stack)
        with err.status("Loading LiveKit and the models..."):
            from lkmetrics.agent import build_components, load_models

            userdata: dict[Any, Any] = {}
            load_models(settings, userdata)
            components = build_components(settings, userdata)
        out = open_output(out_format, output, settings.show, db=db, record=not no_record)
        pipeline = out.pipeline()
        code = 1
        try:
            results = sim.run(settings, components, pipeline, [u.pcm for u in utterances],
                              pause=pause, timeout=timeout, record_dir=record_audio)
            failed = [r for r in results if not r.ok]
            missing = len(utterances) - len(results)
            for r in failed:
                err.print(f"[red]turn {r.index} ({utterances[r.index - 1].label}): "
                          f"{r.error}[/red]")
            if missing:
                err.print(f"[red]{missing} turn(s) not run after the failure[/red]")
            code = 1 if failed or missing else 0
        except KeyboardInterrupt:
            code = 130
        finally:
            out.close(pipeline, code)
        return code
