"""Runs an agent command (console, run, dev, connect): LiveKit's ``cli.run_app`` with the
metrics server, its output set up first, and every exit path recorded.

Options are validated (:func:`lkmetrics.config.prepare.prepare`) before livekit is imported,
so bad input fails fast and cleanly.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from lkmetrics.agent import signals
from lkmetrics.agent.output import open_output
from lkmetrics.config.defaults import OutputFormat
from lkmetrics.config.options import AgentOptions, OutputOptions, ServerOptions
from lkmetrics.config.prepare import prepare
from lkmetrics.config.settings import SETTINGS_ENV, AgentSettings
from lkmetrics.errors import UsageError

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical")


def run_agent(command: str, livekit_args: list[str], agent: AgentOptions, out: OutputOptions,
              *, log_level: str, server: ServerOptions | None = None) -> int:
    """Run ``command`` through LiveKit's CLI. Returns the exit code."""
    if log_level.lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)} (got {log_level!r}).")
    settings = prepare(command, agent, out.show, server)
    from lkmetrics.fleet import check_fleet_options

    settings.otlp_url = check_fleet_options(out.prometheus_port, out.otlp)
    if settings.agent is not None:  # import it now: a bad NAME or a failing import ends here
        from lkmetrics.agent.host import user_agent

        user_agent(settings)
    with contextlib.ExitStack() as stack:
        if settings.llm == "local":
            from lkmetrics.local.llm_server import start_local_llm

            settings.llm_base_url, settings.llm_model = start_local_llm(stack)
        return _delegate(command, livekit_args, settings, out, log_level=log_level)


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


def _delegate(command: str, livekit_args: list[str], settings: AgentSettings,
              opts: OutputOptions, *, log_level: str) -> int:
    table = command == "console" and opts.format is OutputFormat.table
    out = open_output(opts, settings.show, console=_livekit_console() if table else None)
    pipeline = out.pipeline()

    import warnings

    from livekit.agents import cli

    # LiveKit's console shutdown schedules aclose() on a loop that is already closing
    warnings.filterwarnings("ignore", message="coroutine 'AgentServer.aclose' was never awaited")

    from lkmetrics.agent import quiet, server
    from lkmetrics.agent.relay import RelayServer

    quiet.install()  # LiveKit's notes that do not apply, in this process too
    if command == "console":
        quiet.quiet_console()

    relay = RelayServer(pipeline)
    relay.export_env()
    os.environ[SETTINGS_ENV] = settings.to_env(relay.directory)
    server.set_owner_pipeline(pipeline)
    code = 0
    # LiveKit's own first-signal exit, so `connect` (which installs no handlers) stops cleanly
    exit_cli: type[BaseException] = getattr(_legacy_module(), "_ExitCli", SystemExit)

    def stop_cli() -> None:
        raise exit_cli()

    with signals.recorded(stop_cli) as stop:
        try:
            with _argv(["lkmetrics", *livekit_args, "--log-level", log_level]):
                cli.run_app(server.build_server())
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except KeyboardInterrupt:
            code = 130
        finally:
            with signals.quiet(stop):
                code = stop.exit_code or code
                server.set_owner_pipeline(None)
                relay.close()
                out.close(pipeline, code)
    return code


def _legacy_module() -> Any:
    try:
        from livekit.agents.cli import _legacy

        return _legacy
    except ImportError:  # a LiveKit release without it
        return None
