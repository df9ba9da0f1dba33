"""The Typer app, its commands loaded lazily, and the mapping of every LkmetricsError to one
line on stderr and its exit code. Its main callback lives in :mod:`lkmetrics.cli.root`.

A command's module is imported when that command runs or shows its own help: ``lkmetrics
--help`` lists every command from :data:`COMMANDS` and imports none of them."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

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


def tidy_help(command: Any, ctx: Any = None) -> None:
    """In ``command`` and every command under it: its help's paragraphs reflowed (Typer keeps
    a docstring's line breaks, so Rich wrapped each source line on its own, raggedly), and no
    ``<bool>`` after an on/off flag (it takes no value), -h/--help included."""
    if command.help:
        command.help = reflow(command.help)
    params = list(command.params)
    if ctx is not None:
        params.append(command.get_help_option(ctx))
    for param in params:
        if (param is not None and param.param_type_name == "option"
                and getattr(param, "is_flag", False) and param.metavar is None):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub, ctx)


def reflow(help_text: str) -> str:
    """A docstring's paragraphs each on one line, for the terminal to wrap. A paragraph
    with an indented or bulleted line (a list, an example) keeps its lines, as does one
    that Click's ``\\b`` marks; what follows ``\\f`` is not help and is left as it is."""
    import inspect

    shown, cut, rest = inspect.cleandoc(help_text).partition("\f")
    paragraphs = []
    for paragraph in shown.split("\n\n"):
        lines = paragraph.strip("\n").split("\n")
        kept = paragraph.startswith("\b") or any(
            line.startswith((" ", "- ", "* ", "$ ", "|")) for line in lines)
        paragraphs.append(paragraph if kept else " ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs) + cut + rest


class _Group(TyperGroup):
    """The one rule of every command: a LkmetricsError is one line on stderr and its exit
    code; Ctrl-C and SIGTERM are one line naming the signal (exit 130, 143); a closed stdout
    (``| head``) ends the command quietly with exit 0; no known secret leaves on stdout or
    stderr."""

    listing = False  # the main help is being written: unloaded commands show as stubs

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            if self.listing:
                return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1])
            command = self.commands[cmd_name] = load_command(cmd_name)
        if command is not None:
            tidy_help(command, ctx)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.list_commands(ctx):
            # no such command: Typer's "Did you mean" draws from self.commands, so every
            # command is put there (as a stub: the command fails before it would run)
            for name, (_, help_) in COMMANDS.items():
                self.commands.setdefault(name, TyperCommand(name, help=help_))
        return super().resolve_command(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        tidy_help(self, ctx)
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

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

# every command, in the order the main help lists them: the module that registers it on
# ``app`` and the first paragraph of its help (tests/cli/test_help.py checks both against the
# loaded command, so the main help cannot drift from the commands' own)
COMMANDS: dict[str, tuple[str, str]] = {
    "console": ("lkmetrics.cli.agent", "Talk to the agent in this terminal (LiveKit's console) "
                "and watch its metrics live."),
    "run": ("lkmetrics.cli.agent", "Run a worker connected to a LiveKit server (LiveKit's "
            "start)."),
    "dev": ("lkmetrics.cli.agent", "Run a worker in LiveKit's development mode."),
    "connect": ("lkmetrics.cli.agent", "Join one room of a LiveKit server and measure the "
                "session there."),
    "simulate": ("lkmetrics.cli.agent", "Talk to the agent with a headless scripted caller: "
                 "no microphone, no room."),
    "sessions": ("lkmetrics.cli.store", "List recorded sessions, newest first: models, turns, "
                 "p50 turn latency, duration."),
    "report": ("lkmetrics.cli.store", "Summarise recorded figures: count, mean, p50, p90, "
               "p95, p99 and max of each."),
    "compare": ("lkmetrics.cli.store", "Compare two sessions, or two models (--by model), "
                "side by side."),
    "export": ("lkmetrics.cli.store", "Write recorded records to stdout as JSON lines or CSV, "
               "streaming."),
    "import": ("lkmetrics.cli.store", "Import the JSON lines written by --output into the "
               "store."),
    "plot": ("lkmetrics.cli.plot", "Chart the recorded figures: per-turn stages and each "
             "figure's distribution (CDF with p50 and p95); the HTML file and images add LLM "
             "TTFT per request, e2e per turn, tokens per request and the summary table."),
    "prices": ("lkmetrics.cli.prices", "Show the prices lkmetrics knows: unit prices in USD, "
               "source and date."),
    "bench": ("lkmetrics.cli.bench", "Benchmark agent components through LiveKit's own "
              "classes: an LLM endpoint (bench llm), or whole voice stacks with simulated "
              "callers (bench voice)."),
}


def load_command(name: str) -> Any:
    """The click command ``name`` of :data:`COMMANDS`, its module imported (which registers
    it on ``app``) and the command built as Typer builds it."""
    importlib.import_module(COMMANDS[name][0])
    for info in app.registered_commands:
        callback_name = getattr(info.callback, "__name__", "")
        if (info.name or typer.main.get_command_name(callback_name)) == name:
            return typer.main.get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode)
    for group in app.registered_groups:
        if group.name == name:
            return typer.main.get_group_from_info(
                group, pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
    raise LookupError(f"{COMMANDS[name][0]} registers no command {name!r}")


def load_all() -> dict[str, Any]:
    """Every command, loaded (for the checks of every command's help)."""
    return {name: load_command(name) for name in COMMANDS}


def main() -> None:
    """Console-script entry point. A Ctrl-C that lands outside a command's own handling (e.g.
    just after an import committed its last chunk) still ends with one line and exit 130."""
    try:
        try:
            app(prog_name="lkmetrics")
        except KeyboardInterrupt:
            typer.echo("Error: interrupted (SIGINT).", err=True)
            raise SystemExit(130) from None
        except BrokenPipeError:
            quiet_stdout()
            raise SystemExit(0) from None
    except SystemExit as done:
        exit_past_native_runtime(done)
        raise
    except BaseException:  # a bug: its traceback, then the same way out
        if native_runtime_started():
            sys.excepthook(*sys.exc_info())
            exit_past_native_runtime(SystemExit(1))
        raise


def native_runtime_started() -> bool:
    """Whether this process started LiveKit's native runtime (any livekit.rtc object does)."""
    ffi = sys.modules.get("livekit.rtc._ffi_client")
    return ffi is not None and getattr(ffi.FfiClient, "_instance", None) is not None


def exit_past_native_runtime(done: SystemExit) -> None:
    """When LiveKit's native runtime (livekit-rtc's FFI) was started, end the process here,
    with DONE's status: the threads are joined and the exit handlers run as at any exit
    (LiveKit's disposal of its runtime among them), the output is flushed, and os._exit skips
    the interpreter's finalization. During finalization, a native thread that calls back into
    Python (an FFI event) is ended by Python with pthread_exit, which Rust cannot unwind
    through: the process aborted (SIGABRT, "panic in a function that cannot unwind") after
    its work was done, once in about five runs of the test suite. Otherwise: nothing.

    Files still open are not flushed by os._exit: lkmetrics' writers flush each record and
    close before the command returns, and logging's handlers close in the exit handlers."""
    if not native_runtime_started():
        return
    import atexit

    code = done.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
    status = 0 if code is None else code if isinstance(code, int) else 1
    try:
        shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls first
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()
    except KeyboardInterrupt:  # a Ctrl-C while a thread finishes: still this way out
        print("Error: interrupted (SIGINT).", file=sys.stderr)
        status = 130
    except BaseException:  # a failing exit handler: its traceback, as Python prints it
        traceback.print_exc()
        status = status or 1
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: as exit 0
                stream.flush()
    os._exit(status)
