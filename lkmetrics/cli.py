"""Typer wiring only: parse options, call the core, map errors to messages and exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lkmetrics import __version__
from lkmetrics.config import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_LLM,
    DEFAULT_STT,
    DEFAULT_TTS,
    DEFAULT_VOICE,
)
from lkmetrics.cost.cli import register as register_cost_commands
from lkmetrics.errors import LkmetricsError
from lkmetrics.store_cli import given_on_command_line
from lkmetrics.store_cli import register as register_store_commands


class _Group(TyperGroup):
    """Maps every LkmetricsError raised by a command to one line on stderr and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LkmetricsError as e:
            raise fail(e) from None


app = typer.Typer(
    cls=_Group,
    name="lkmetrics",
    help="See where the time and the tokens of your LiveKit voice agent go.\n\n"
    "Runs a LiveKit Agents voice agent (STT -> LLM -> TTS, Silero VAD) and shows, records "
    "and compares its metrics.",
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

AGENT = "Agent"
OUTPUT = "Output"
LIVEKIT = "LiveKit server"

# -- shared options (also accepted before the command) --

FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format", "-f", envvar="LKMETRICS_FORMAT", show_envvar=True,
        help="table, json or none. Default: table on a terminal, else json (JSON lines).",
        rich_help_panel=OUTPUT,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Also append every record to this file as JSON lines.",
                 rich_help_panel=OUTPUT, dir_okay=False),
]
EnvFileOpt = Annotated[
    Path | None,
    typer.Option("--env-file", help="Read environment variables from this file "
                 "(default: ./.env if it exists).", rich_help_panel=OUTPUT, dir_okay=False),
]
ShowOpt = Annotated[
    list[str] | None,
    typer.Option("--show", help="Also show these record kinds in the table view, e.g. vad.",
                 rich_help_panel=OUTPUT),
]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Record into this SQLite file (default: $LKMETRICS_HOME/metrics.db).",
                 rich_help_panel=OUTPUT, dir_okay=False),
]
NoRecordOpt = Annotated[
    bool, typer.Option("--no-record", help="Do not record the session in the database.",
                       rich_help_panel=OUTPUT),
]

SttOpt = Annotated[str, typer.Option("--stt", metavar="MODEL", rich_help_panel=AGENT,
                                     help="STT as PROVIDER/MODEL (LiveKit Inference), "
                                     "'local' (Whisper) or 'none'.")]
LlmOpt = Annotated[str, typer.Option("--llm", metavar="MODEL", rich_help_panel=AGENT,
                                     help="LLM as PROVIDER/MODEL, or 'local' (SmolLM2).")]
TtsOpt = Annotated[str, typer.Option("--tts", metavar="MODEL", rich_help_panel=AGENT,
                                     help="TTS as PROVIDER/MODEL, 'local' (Piper) or 'none'.")]
VoiceOpt = Annotated[str, typer.Option("--voice", metavar="ID", rich_help_panel=AGENT,
                                       help="TTS voice id.")]
InstructionsOpt = Annotated[str, typer.Option("--instructions", rich_help_panel=AGENT,
                                              help="The agent's instructions.")]
GreetOpt = Annotated[bool, typer.Option("--greet/--no-greet", rich_help_panel=AGENT,
                                        help="Greet the user on entering.")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--llm-base-url", metavar="URL", rich_help_panel=AGENT,
                 help="Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, a gateway) "
                 "instead of LiveKit Inference; key from OPENAI_API_KEY (may be empty)."),
]
LocalOpt = Annotated[bool, typer.Option("--local", rich_help_panel=AGENT,
                                        help="Shorthand for --stt local --llm local --tts local "
                                        "(needs lkmetrics\\[local]; no keys, no network).")]
LogLevelOpt = Annotated[str, typer.Option("--log-level", rich_help_panel=OUTPUT,
                                          help="LiveKit's log level (debug, info, warn, error).")]

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="LIVEKIT_URL", show_envvar=True,
                                            rich_help_panel=LIVEKIT,
                                            help="WebSocket URL of the LiveKit server.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="LIVEKIT_API_KEY",
                                               show_envvar=True, show_default=False,
                                               rich_help_panel=LIVEKIT, help="LiveKit API key.")]
ApiSecretOpt = Annotated[str | None, typer.Option("--api-secret", envvar="LIVEKIT_API_SECRET",
                                                  show_envvar=True, show_default=False,
                                                  rich_help_panel=LIVEKIT,
                                                  help="LiveKit API secret.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lkmetrics {__version__}")
        raise typer.Exit()


def fail(err: LkmetricsError) -> typer.Exit:
    """Print the one-line message to stderr and give the Exit to raise."""
    from lkmetrics.config import redact

    typer.echo(f"Error: {redact(str(err))}", err=True)
    return typer.Exit(err.exit_code)


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    env_file: EnvFileOpt = None,
    version: Annotated[bool | None, typer.Option("--version", callback=_version,
                                                 is_eager=True, help="Show the version.")] = None,
) -> None:
    """See where the time and the tokens of your LiveKit voice agent go."""
    ctx.obj = {"fmt": fmt, "output": output, "env_file": env_file}
    if ctx.invoked_subcommand is None:
        given = [p for p in ("fmt", "output", "env_file") if given_on_command_line(ctx, p)]
        if not given:
            typer.echo(ctx.get_help())
            raise typer.Exit()
        ctx.invoke(console, ctx=ctx)


def _inherit(ctx: typer.Context, opts: dict[str, Any]) -> dict[str, Any]:
    """The output options given after the command, else those given before it."""
    parent: dict[str, Any] = (ctx.parent.obj if ctx.parent else None) or ctx.obj or {}
    return {key: opts.get(key) if opts.get(key) is not None else parent.get(key)
            for key in ("fmt", "output", "env_file")}


AGENT_OPTS = ("stt", "llm", "tts", "voice", "instructions", "greet", "llm_base_url", "local",
              "fmt", "output", "env_file", "show", "db", "no_record", "log_level", "url",
              "api_key", "api_secret")


def _agent_opts(values: dict[str, Any]) -> dict[str, Any]:
    """The agent and output options among a command's parameters."""
    return {k: v for k, v in values.items() if k in AGENT_OPTS}


def _run(ctx: typer.Context, command: str, livekit_args: list[str], **opts: Any) -> None:
    from lkmetrics import runner

    opts.update(_inherit(ctx, opts))
    raise typer.Exit(runner.run_agent(command, livekit_args, **opts))


@app.command()
def console(
    ctx: typer.Context,
    text: Annotated[bool, typer.Option("--text", help="Start in text mode (type to talk).")]
    = False,
    input_device: Annotated[str | None, typer.Option(help="Input device id or name.")] = None,
    output_device: Annotated[str | None, typer.Option(help="Output device id or name.")] = None,
    list_devices: Annotated[bool, typer.Option(help="List audio devices and exit.")] = False,
    stt: SttOpt = DEFAULT_STT,
    llm: LlmOpt = DEFAULT_LLM,
    tts: TtsOpt = DEFAULT_TTS,
    voice: VoiceOpt = DEFAULT_VOICE,
    instructions: InstructionsOpt = DEFAULT_INSTRUCTIONS,
    greet: GreetOpt = True,
    llm_base_url: BaseUrlOpt = None,
    local: LocalOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    env_file: EnvFileOpt = None,
    show: ShowOpt = None,
    db: DbOpt = None,
    no_record: NoRecordOpt = False,
    log_level: LogLevelOpt = "warn",
) -> None:
    """Talk to the agent in this terminal (LiveKit's console) and watch its metrics live."""
    args = ["console"] + (["--text"] if text else [])
    if input_device:
        args += ["--input-device", input_device]
    if output_device:
        args += ["--output-device", output_device]
    if list_devices:
        args.append("--list-devices")
    _run(ctx, "console", args, **_agent_opts(locals()))


def _room_command(name: str, doc: str, livekit_command: str) -> None:
    def command(
        ctx: typer.Context,
        url: UrlOpt = None,
        api_key: ApiKeyOpt = None,
        api_secret: ApiSecretOpt = None,
        stt: SttOpt = DEFAULT_STT,
        llm: LlmOpt = DEFAULT_LLM,
        tts: TtsOpt = DEFAULT_TTS,
        voice: VoiceOpt = DEFAULT_VOICE,
        instructions: InstructionsOpt = DEFAULT_INSTRUCTIONS,
        greet: GreetOpt = True,
        llm_base_url: BaseUrlOpt = None,
        local: LocalOpt = False,
        fmt: FormatOpt = None,
        output: OutputOpt = None,
        env_file: EnvFileOpt = None,
        show: ShowOpt = None,
        db: DbOpt = None,
        no_record: NoRecordOpt = False,
        log_level: LogLevelOpt = "info",
    ) -> None:
        _run(ctx, name, [livekit_command], **_agent_opts(locals()))

    command.__doc__ = doc
    app.command(name)(command)


_room_command("run", "Run a worker connected to a LiveKit server (LiveKit's start).\n\n"
              "Every room it joins is measured.", "start")
_room_command("dev", "Run a worker in LiveKit's development mode.", "dev")


@app.command()
def connect(
    ctx: typer.Context,
    room: Annotated[str, typer.Option("--room", help="The room to join.")],
    participant_identity: Annotated[str | None, typer.Option(help="Agent identity.")] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    api_secret: ApiSecretOpt = None,
    stt: SttOpt = DEFAULT_STT,
    llm: LlmOpt = DEFAULT_LLM,
    tts: TtsOpt = DEFAULT_TTS,
    voice: VoiceOpt = DEFAULT_VOICE,
    instructions: InstructionsOpt = DEFAULT_INSTRUCTIONS,
    greet: GreetOpt = True,
    llm_base_url: BaseUrlOpt = None,
    local: LocalOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    env_file: EnvFileOpt = None,
    show: ShowOpt = None,
    db: DbOpt = None,
    no_record: NoRecordOpt = False,
    log_level: LogLevelOpt = "info",
) -> None:
    """Join one room of a LiveKit server and measure the session there."""
    args = ["connect", "--room", room]
    if participant_identity:
        args += ["--participant-identity", participant_identity]
    _run(ctx, "connect", args, **_agent_opts(locals()))


@app.command()
def simulate(
    ctx: typer.Context,
    say: Annotated[list[str] | None, typer.Option(
        "--say", metavar="WAV|TEXT",
        help="A turn: a WAV file (any rate, mono or stereo) or text spoken with the local "
        "Piper voice. Repeatable. Default: three built-in spoken questions.")] = None,
    turns: Annotated[int, typer.Option("--turns", help="Repeat the script N times.")] = 1,
    pause: Annotated[float, typer.Option("--pause", help="Seconds of silence between turns.")]
    = 1.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each reply.")]
    = 60.0,
    record_audio: Annotated[Path | None, typer.Option(
        "--record-audio", metavar="DIR", file_okay=False,
        help="Also write each turn's user and agent audio as WAV files in DIR.")] = None,
    stt: SttOpt = DEFAULT_STT,
    llm: LlmOpt = DEFAULT_LLM,
    tts: TtsOpt = DEFAULT_TTS,
    voice: VoiceOpt = DEFAULT_VOICE,
    instructions: InstructionsOpt = DEFAULT_INSTRUCTIONS,
    greet: GreetOpt = True,
    llm_base_url: BaseUrlOpt = None,
    local: LocalOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    env_file: EnvFileOpt = None,
    show: ShowOpt = None,
    db: DbOpt = None,
    no_record: NoRecordOpt = False,
) -> None:
    """Talk to the agent with a headless scripted caller: no microphone, no room.

    Each turn is real speech fed to the session in real time; the agent's reply is played out
    at real-time pace. Exit code 0 when every turn got a reply, 1 when one timed out or failed.
    """
    from lkmetrics import runner

    opts = _inherit(ctx, {"fmt": fmt, "output": output, "env_file": env_file})
    raise typer.Exit(runner.run_simulation(
        say=say or [], turns=turns, pause=pause, timeout=timeout, record_audio=record_audio,
        stt=stt, llm=llm, tts=tts, voice=voice, instructions=instructions, greet=greet,
        llm_base_url=llm_base_url, local=local, show=show, db=db, no_record=no_record, **opts))


register_store_commands(app)
register_cost_commands(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="lkmetrics")


if __name__ == "__main__":
    main()
