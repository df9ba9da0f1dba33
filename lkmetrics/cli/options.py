"""Every shared option, declared once: the agent options, the output options and the LiveKit
server options, each turned into one typed object by :func:`with_options` (the classes of
:mod:`lkmetrics.config.options`: ``AgentOptions``, ``OutputOptions``, ``ServerOptions``); and
the one function that decides every command's output format.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lkmetrics.config.defaults import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_LLM,
    DEFAULT_STT,
    DEFAULT_TTS,
    DEFAULT_VOICE,
    OutputFormat,
)
from lkmetrics.errors import UsageError

if TYPE_CHECKING:  # built only when a command runs (--help never loads their dataclasses)
    from lkmetrics.config.options import AgentOptions, FleetOptions, OutputOptions, ServerOptions

AGENT = "Agent"
OUTPUT = "Output"
FLEET = "Fleet (Prometheus, OpenTelemetry)"
LIVEKIT = "LiveKit server"

# -- the output format: one resolution for every command --------------------------------------

AGENT_FORMATS = (OutputFormat.table, OutputFormat.json, OutputFormat.none)


def given_on_command_line(ctx: Any, name: str) -> bool:
    """Whether option ``name`` of ``ctx`` (a typer.Context or its click parent) was typed."""
    if ctx is None or name not in ctx.params:
        return False
    return getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"


def inherited(ctx: Any, name: str, own: Any, *, parent_env: bool = True) -> Any:
    """An output option of a command: typed after the command, else typed before it (``lkmetrics
    --format json report``, ``lkmetrics --format json bench llm``), else the command's own value
    (environment or default), else -- with ``parent_env`` -- the value the main command read
    from the environment."""
    if given_on_command_line(ctx, name):
        return own
    outer = ctx.parent if ctx is not None else None
    while outer is not None:
        if given_on_command_line(outer, name):
            return outer.params[name]
        outer = outer.parent
    root = ctx.find_root() if ctx is not None else None
    if own is not None or not parent_env or root is None or root is ctx:
        return own
    return root.params.get(name)


def command_name(ctx: Any) -> str:
    """``console``, ``report``, ``bench llm``: the command as typed after ``lkmetrics``."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    # the main command runs console when given only global options
    return " ".join(reversed(names)) or "console"


def check_format_env() -> None:
    """One rule for every command: LKMETRICS_FORMAT sets the format of agent commands only,
    but a value that is no format at all (a typo, ``xml``) is refused by every command, never
    silently ignored by some."""
    import os

    value = os.environ.get("LKMETRICS_FORMAT", "").strip()
    if value and value.lower() not in {f.value for f in OutputFormat}:
        raise UsageError(
            f"LKMETRICS_FORMAT={value!r} is not an output format; set it to one of "
            f"{', '.join(f.value for f in AGENT_FORMATS)} (it sets agent commands' --format) "
            "or unset it.")


def resolve_format(ctx: Any, own: str | None, allowed: Sequence[OutputFormat],
                   default: OutputFormat | None = None, *, parent_env: bool = True
                   ) -> OutputFormat:
    """The command's output format; without one, ``default`` or, for agent commands, ``table``
    on a terminal and ``json`` otherwise."""
    check_format_env()
    value = inherited(ctx, "fmt", own, parent_env=parent_env)
    if value is None or str(value).strip() == "":
        if default is not None:
            return default
        return OutputFormat.table if sys.stdout.isatty() else OutputFormat.json
    name = str(value).strip().lower()
    for fmt in allowed:
        if fmt.value == name:
            return fmt
    raise UsageError(
        f"--format {value!r} does not apply to `lkmetrics {command_name(ctx)}`, whose --format "
        f"takes {', '.join(f.value for f in allowed)}."
    )


def format_option(allowed: Sequence[OutputFormat], *, envvar: str | None = None,
                  panel: str | None = None) -> Any:
    """The ``--format/-f`` option of a command taking ``allowed``."""
    return typer.Option(
        "--format", "-f", envvar=envvar, show_envvar=envvar is not None, metavar="FORMAT",
        help=f"{', '.join(f.value for f in allowed)}.", rich_help_panel=panel,
    )


# -- option groups --------------------------------------------------------------------------


def _opt(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


@dataclass(frozen=True)
class OptionGroup:
    """Typer parameters declared once, and how they become one typed object."""

    name: str  # the keyword argument the command receives
    params: tuple[inspect.Parameter, ...]
    build: Callable[[Any, dict[str, Any]], Any]


def _build_agent(ctx: Any, kw: dict[str, Any]) -> AgentOptions:
    from lkmetrics.config.options import AgentOptions

    typed = frozenset(n for n in ("stt", "llm", "tts", "voice", "instructions", "greet",
                                  "llm_base_url", "local") if given_on_command_line(ctx, n))
    return AgentOptions(stt=kw["stt"], llm=kw["llm"], tts=kw["tts"], voice=kw["voice"],
                        instructions=kw["instructions"], greet=kw["greet"],
                        llm_base_url=kw["llm_base_url"], local=kw["local"],
                        agent=kw["agent"], typed=typed)


AGENT_OPTIONS = OptionGroup("agent", (
    _opt("agent", Annotated[str | None, typer.Option(
        "--agent", metavar="TARGET", rich_help_panel=AGENT,
        help="Your own agent instead of the built-in one: agent.py, agent.py:NAME or "
        "package.module:NAME (an AgentServer, WorkerOptions or entrypoint). Its models are "
        "used as they are unless --stt/--llm/--tts/--voice/--llm-base-url/--local is typed.")],
        None),
    _opt("stt", Annotated[str, typer.Option(
        "--stt", metavar="MODEL", rich_help_panel=AGENT,
        help="STT as PROVIDER/MODEL (LiveKit Inference), 'local' (Whisper) or 'none'.")],
        DEFAULT_STT),
    _opt("llm", Annotated[str, typer.Option(
        "--llm", metavar="MODEL", rich_help_panel=AGENT,
        help="LLM as PROVIDER/MODEL, or 'local' (SmolLM2).")], DEFAULT_LLM),
    _opt("tts", Annotated[str, typer.Option(
        "--tts", metavar="MODEL", rich_help_panel=AGENT,
        help="TTS as PROVIDER/MODEL, 'local' (Piper) or 'none'.")], DEFAULT_TTS),
    _opt("voice", Annotated[str, typer.Option(
        "--voice", metavar="ID", rich_help_panel=AGENT, help="TTS voice id.")], DEFAULT_VOICE),
    _opt("instructions", Annotated[str, typer.Option(
        "--instructions", rich_help_panel=AGENT, help="The agent's instructions.")],
        DEFAULT_INSTRUCTIONS),
    _opt("greet", Annotated[bool, typer.Option(
        "--greet/--no-greet", rich_help_panel=AGENT, help="Greet the user on entering.")], True),
    _opt("llm_base_url", Annotated[str | None, typer.Option(
        "--llm-base-url", metavar="URL", rich_help_panel=AGENT,
        help="Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, a gateway) instead of "
        "LiveKit Inference; key from OPENAI_API_KEY (may be empty).")], None),
    _opt("local", Annotated[bool, typer.Option(
        "--local", rich_help_panel=AGENT,
        help="Shorthand for --stt local --llm local --tts local (needs lkmetrics\\[local]; no "
        "keys, no network).")], False),
), _build_agent)


def _build_output(ctx: Any, kw: dict[str, Any]) -> OutputOptions:
    from lkmetrics.config.options import OutputOptions

    return OutputOptions(
        format=resolve_format(ctx, kw["fmt"], AGENT_FORMATS),
        output=inherited(ctx, "output", kw["output"]),
        env_file=inherited(ctx, "env_file", kw["env_file"]),
        show=tuple(s.lower() for s in kw["show"] or ()),
        db=kw["db"],
        record=not kw["no_record"],
        prometheus_host=kw["prometheus_host"],
        prometheus_port=kw["prometheus_port"],
        otlp=kw["otlp"],
        view=view_name(kw["view"]),
    )


VIEWS = ("recipe", "compact")


def view_name(value: str | None) -> str:
    name = (value or "recipe").strip().lower()
    if name not in VIEWS:
        raise UsageError(f"--view expects recipe or compact (got {value!r}).")
    return name


# -- the simulated caller's behaviour: simulate and bench voice ------------------------------

BargeInOpt = Annotated[float | None, typer.Option(
    "--barge-in", metavar="SECONDS",
    help="SECONDS into each reply's audio, say the next line over it; measures "
    "turn.time_to_yield (the caller's onset -> the agent's audio stops).")]
BackchannelOpt = Annotated[float | None, typer.Option(
    "--backchannel", metavar="SECONDS",
    help="SECONDS into each reply's audio, say \"mm-hmm\" and keep listening; counts "
    "backchannels and false_interruptions (the agent stopped for it).")]
PauseMidOpt = Annotated[float | None, typer.Option(
    "--pause-mid", metavar="SECONDS",
    help="Say each line in two halves with SECONDS of silence between; counts "
    "eot_mispredictions (the agent took the first half for the whole turn).")]
ScenarioOpt = Annotated[Path | None, typer.Option(
    "--scenario", metavar="FILE",
    help="A scripted conversation: a TOML file of [[turn]] tables (say = \"...\", or wav = "
    "\"file.wav\" with words = \"...\"), each with its own barge_in, backchannel, "
    "pause_mid and pause seconds (docs/scenario.md). Instead of --say (and simulate's "
    "--turns); the --barge-in/--backchannel/--pause-mid flags apply to turns that set no "
    "such step.", show_default=False)]

# accepted before the command too (on the main callback), so declared once here
FormatOpt = Annotated[str | None, format_option(AGENT_FORMATS, envvar="LKMETRICS_FORMAT",
                                                panel=OUTPUT)]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Also append every record to this file as JSON lines.",
    rich_help_panel=OUTPUT, dir_okay=False)]
EnvFileOpt = Annotated[Path | None, typer.Option(
    "--env-file", help="Read environment variables from this file (default: ./.env if it "
    "exists).", rich_help_panel=OUTPUT, dir_okay=False)]

FLEET_PARAMS = (
    _opt("prometheus_port", Annotated[int | None, typer.Option(
        "--prometheus-port", metavar="PORT", rich_help_panel=FLEET,
        help="Serve the figures as Prometheus series on http://HOST:PORT/metrics (every "
        "job of a run/dev worker included).")], None),
    _opt("prometheus_host", Annotated[str, typer.Option(
        "--prometheus-host", metavar="HOST", rich_help_panel=FLEET,
        help="The address /metrics listens on.")], "127.0.0.1"),
    _opt("otlp", Annotated[str | None, typer.Option(
        "--otlp", metavar="URL", envvar="OTEL_EXPORTER_OTLP_ENDPOINT", show_envvar=True,
        rich_help_panel=FLEET,
        help="Send the figures as OTel metrics, and LiveKit's spans, to this OTLP/HTTP "
        "collector, e.g. http://127.0.0.1:4318.")], None),
)


OUTPUT_OPTIONS = OptionGroup("out", (
    _opt("fmt", FormatOpt, None),
    _opt("output", OutputOpt, None),
    _opt("env_file", EnvFileOpt, None),
    _opt("show", Annotated[list[str] | None, typer.Option(
        "--show", help="Also show these record kinds in the table view, e.g. vad.",
        rich_help_panel=OUTPUT)], None),
    _opt("view", Annotated[str | None, typer.Option(
        "--view", envvar="LKMETRICS_VIEW", show_envvar=True, rich_help_panel=OUTPUT,
        help="The live table view: recipe (LiveKit's recipe tables, one per metric) or "
        "compact (one line per metric, a short block per turn).")], None),
    _opt("db", Annotated[Path | None, typer.Option(
        "--db", help="Record into this SQLite file (default: $LKMETRICS_HOME/metrics.db).",
        rich_help_panel=OUTPUT, dir_okay=False)], None),
    _opt("no_record", Annotated[bool, typer.Option(
        "--no-record", help="Do not record the session in the database.",
        rich_help_panel=OUTPUT)], False),
    *FLEET_PARAMS,
), _build_output)


def _build_fleet(ctx: Any, kw: dict[str, Any]) -> FleetOptions:
    from lkmetrics.config.options import FleetOptions

    return FleetOptions(prometheus_host=kw["prometheus_host"],
                        prometheus_port=kw["prometheus_port"], otlp=kw["otlp"])


# for commands without the output options (bench voice)
FLEET_OPTIONS = OptionGroup("fleet", FLEET_PARAMS, _build_fleet)


def _build_server(ctx: Any, kw: dict[str, Any]) -> ServerOptions:
    from lkmetrics.config.options import ServerOptions

    return ServerOptions(url=kw["url"], api_key=kw["api_key"], api_secret=kw["api_secret"])


SERVER_OPTIONS = OptionGroup("server", (
    _opt("url", Annotated[str | None, typer.Option(
        "--url", envvar="LIVEKIT_URL", show_envvar=True, rich_help_panel=LIVEKIT,
        help="WebSocket URL of the LiveKit server.")], None),
    _opt("api_key", Annotated[str | None, typer.Option(
        "--api-key", envvar="LIVEKIT_API_KEY", show_envvar=True, show_default=False,
        rich_help_panel=LIVEKIT, help="LiveKit API key.")], None),
    _opt("api_secret", Annotated[str | None, typer.Option(
        "--api-secret", envvar="LIVEKIT_API_SECRET", show_envvar=True, show_default=False,
        rich_help_panel=LIVEKIT, help="LiveKit API secret.")], None),
), _build_server)


def log_level_option(default: str) -> inspect.Parameter:
    return _opt("log_level", Annotated[str, typer.Option(
        "--log-level", rich_help_panel=OUTPUT,
        help="LiveKit's log level (debug, info, warn, error).")], default)


def with_options(*groups: OptionGroup, extra: Sequence[inspect.Parameter] = ()
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the groups' options to a command, which receives one object per group as the
    keyword argument named by the group (``agent``, ``out``, ``server``); ``extra``
    parameters (e.g. ``--log-level``) pass through as they are.

    The command keeps its own parameters (``ctx`` first); Typer sees them all in one
    signature, in the style of sqlite-utils' ``output_options``.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(command, eval_str=True)
        taken = {g.name for g in groups} | {p.name for p in extra}
        own = [p for p in sig.parameters.values() if p.name not in taken]
        added = [p for g in groups for p in g.params] + list(extra)
        params = own + added
        defaults = {p.name: p.default for p in params}

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {**defaults, **kwargs}
            ctx = values.get("ctx")
            call = {p.name: values[p.name] for p in own}
            call.update({p.name: values[p.name] for p in extra})
            for group in groups:
                call[group.name] = group.build(ctx, values)
            return command(**call)

        del wrapper.__wrapped__  # Typer must read the new signature, not the command's
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate
