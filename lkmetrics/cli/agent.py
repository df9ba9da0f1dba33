"""The commands that run an agent: console, run, dev, connect and simulate.

Each is a docstring, its own options and a call into the core; the shared agent, output and
server options come from :mod:`lkmetrics.cli.options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lkmetrics.cli.app import app
from lkmetrics.cli.options import (
    AGENT_OPTIONS,
    OUTPUT_OPTIONS,
    SERVER_OPTIONS,
    BackchannelOpt,
    BargeInOpt,
    PauseMidOpt,
    ScenarioOpt,
    log_level_option,
    with_options,
)
from lkmetrics.config.options import AgentOptions, OutputOptions, ServerOptions


def _run(command: str, livekit_args: list[str], agent: AgentOptions, out: OutputOptions,
         log_level: str, server: ServerOptions | None = None) -> None:
    from lkmetrics.agent.run import run_agent
    from lkmetrics.config.envfile import load_env_file

    load_env_file(out.env_file)
    raise typer.Exit(run_agent(command, livekit_args, agent, out, log_level=log_level,
                               server=server))


@app.command()
@with_options(AGENT_OPTIONS, OUTPUT_OPTIONS, extra=[log_level_option("warn")])
def console(
    ctx: typer.Context,
    agent: AgentOptions,
    out: OutputOptions,
    log_level: str,
    text: Annotated[bool, typer.Option("--text", help="Start in text mode (type to talk).")]
    = False,
    input_device: Annotated[str | None, typer.Option(help="Input device id or name.")] = None,
    output_device: Annotated[str | None, typer.Option(help="Output device id or name.")] = None,
    list_devices: Annotated[bool, typer.Option(help="List audio devices and exit.")] = False,
) -> None:
    """Talk to the agent in this terminal (LiveKit's console) and watch its metrics live."""
    args = ["console"] + (["--text"] if text else [])
    if input_device:
        args += ["--input-device", input_device]
    if output_device:
        args += ["--output-device", output_device]
    if list_devices:
        args.append("--list-devices")
    _run("console", args, agent, out, log_level)


def _room_command(name: str, doc: str, livekit_command: str) -> None:
    @with_options(SERVER_OPTIONS, AGENT_OPTIONS, OUTPUT_OPTIONS, extra=[log_level_option("info")])
    def command(ctx: typer.Context, server: ServerOptions, agent: AgentOptions,
                out: OutputOptions, log_level: str) -> None:
        _run(name, [livekit_command], agent, out, log_level, server)

    command.__doc__ = doc
    app.command(name)(command)


_room_command("run", "Run a worker connected to a LiveKit server (LiveKit's start).\n\n"
              "Every room it joins is measured.", "start")
_room_command("dev", "Run a worker in LiveKit's development mode.", "dev")


@app.command()
@with_options(SERVER_OPTIONS, AGENT_OPTIONS, OUTPUT_OPTIONS, extra=[log_level_option("info")])
def connect(
    ctx: typer.Context,
    server: ServerOptions,
    agent: AgentOptions,
    out: OutputOptions,
    log_level: str,
    room: Annotated[str, typer.Option("--room", help="The room to join.")],
    participant_identity: Annotated[str | None, typer.Option(help="Agent identity.")] = None,
) -> None:
    """Join one room of a LiveKit server and measure the session there."""
    args = ["connect", "--room", room]
    if participant_identity:
        args += ["--participant-identity", participant_identity]
    _run("connect", args, agent, out, log_level, server)


@app.command()
@with_options(AGENT_OPTIONS, OUTPUT_OPTIONS)
def simulate(
    ctx: typer.Context,
    agent: AgentOptions,
    out: OutputOptions,
    say: Annotated[list[str] | None, typer.Option(
        "--say", metavar="WAV|TEXT",
        help="A turn: a WAV file (any rate, mono or stereo; FILE.wav=THE WORDS gives its "
        "words, for stt.wer) or text spoken with the local Piper voice. Repeatable. Default: "
        "three built-in spoken questions.")] = None,
    turns: Annotated[int, typer.Option("--turns", help="Repeat the script N times.")] = 1,
    pause: Annotated[float, typer.Option("--pause", help="Seconds of silence between turns.")]
    = 1.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each reply.")]
    = 60.0,
    record_audio: Annotated[Path | None, typer.Option(
        "--record-audio", metavar="DIR", file_okay=False,
        help="Also write each turn's user and agent audio as WAV files in DIR.")] = None,
    barge_in: BargeInOpt = None,
    backchannel: BackchannelOpt = None,
    pause_mid: PauseMidOpt = None,
    scenario: ScenarioOpt = None,
) -> None:
    """Talk to the agent with a headless scripted caller: no microphone, no room.

    Each turn is real speech fed to the session in real time; the agent's reply is played out
    at real-time pace. Exit code 0 when every turn got a reply, 1 when one timed out or failed.
    """
    from lkmetrics.config.envfile import load_env_file
    from lkmetrics.simulate.command import Script, run_simulation

    load_env_file(out.env_file)
    from lkmetrics.simulate.script import Behaviour

    script = Script(tuple(say or ()), turns, pause, timeout, record_audio,
                    Behaviour(barge_in, backchannel, pause_mid), scenario)
    raise typer.Exit(run_simulation(script, agent, out))
