"""The Typer app and the mapping of every LkmetricsError to one line on stderr and its exit
code. Its main callback lives in :mod:`lkmetrics.cli.root`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import typer
from typer.core import TyperGroup

from lkmetrics.errors import LkmetricsError


def fail(err: LkmetricsError) -> typer.Exit:
    """Print the one-line message to stderr and give the Exit to raise. An interruption that
    SIGTERM caused exits 143, whoever turned it into an error."""
    from lkmetrics.safety import redact

    code, message = err.exit_code, str(err)
    if code == 130 and _TERMINATED:
        code = 143
        if "SIGTERM" not in message:
            message = f"terminated (SIGTERM): {message}"
    typer.echo(f"Error: {redact(message)}", err=True)
    return typer.Exit(code)


_TERMINATED: list[bool] = []  # SIGTERM arrived (set by the handler of terminate_as_ctrl_c)


@contextlib.contextmanager
def terminate_as_ctrl_c() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (noted), so every command stops on it as on Ctrl-C:
    what it holds is cleaned up and one line names the signal. Commands that run an agent
    install their own handlers inside (lkmetrics.agent.signals), restored after."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminated(sig: int, frame: FrameType | None) -> None:
        _TERMINATED.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def quiet_stdout() -> None:
    """The reader of stdout went away (``| head``): what is left unwritten goes nowhere, so
    the interpreter's last flush cannot fail either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def hide_flag_metavars(command: Any, ctx: Any = None) -> None:
    """No ``<bool>`` after an on/off flag in the help (it takes no value), -h/--help included,
    in ``command`` and every command under it."""
    params = list(command.params)
    if ctx is not None:
        params.append(command.get_help_option(ctx))
    for param in params:
        if (param is not None and param.param_type_name == "option"
                and getattr(param, "is_flag", False) and param.metavar is None):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        hide_flag_metavars(sub, ctx)


class _Group(TyperGroup):
    """The one rule of every command: a LkmetricsError is one line on stderr and its exit
    code; Ctrl-C and SIGTERM are one line naming the signal (exit 130, 143); a closed stdout
    (``| head``) ends the command quietly with exit 0; no known secret leaves on stdout or
    stderr."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            hide_flag_metavars(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        hide_flag_metavars(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        from lkmetrics.errors import StoppedBySignal
        from lkmetrics.safety import redacted_streams

        with redacted_streams(), terminate_as_ctrl_c():
            try:
                return super().invoke(ctx)
            except LkmetricsError as e:
                raise fail(e) from None
            except KeyboardInterrupt:
                how = "terminated (SIGTERM)" if _TERMINATED else "interrupted (SIGINT)"
                raise fail(StoppedBySignal(f"{command_of(ctx)} {how}.",
                                           143 if _TERMINATED else 130)) from None
            except BrokenPipeError:
                quiet_stdout()
                raise typer.Exit(0) from None


def command_of(ctx: Any) -> str:
    """``lkmetrics report``: the command being run, for messages."""
    sub = getattr(ctx, "invoked_subcommand", None)
    return f"lkmetrics {sub}" if sub else "lkmetrics"


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


def main() -> None:
    """Console-script entry point. A Ctrl-C that lands outside a command's own handling (e.g.
    just after an import committed its last chunk) still ends with one line and exit 130."""
    try:
        app(prog_name="lkmetrics")
    except KeyboardInterrupt:
        typer.echo("Error: interrupted (SIGINT).", err=True)
        raise SystemExit(130) from None
    except BrokenPipeError:
        quiet_stdout()
        raise SystemExit(0) from None
