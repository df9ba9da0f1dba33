"""The Typer app: the main callback (global options, bare ``lkmetrics`` prints help, global
options alone run ``console``) and the mapping of every LkmetricsError to one line on stderr
and its exit code."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lkmetrics import __version__
from lkmetrics.cli.options import EnvFileOpt, FormatOpt, OutputOpt, given_on_command_line
from lkmetrics.errors import LkmetricsError


def fail(err: LkmetricsError) -> typer.Exit:
    """Print the one-line message to stderr and give the Exit to raise."""
    from lkmetrics.config import redact

    typer.echo(f"Error: {redact(str(err))}", err=True)
    return typer.Exit(err.exit_code)


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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lkmetrics {__version__}")
        raise typer.Exit()


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
    if ctx.invoked_subcommand is None:
        if not any(given_on_command_line(ctx, p) for p in ("fmt", "output", "env_file")):
            typer.echo(ctx.get_help())
            raise typer.Exit()
        from lkmetrics.cli.agent import console

        ctx.invoke(console, ctx=ctx, fmt=fmt, output=output, env_file=env_file)


def main() -> None:
    """Console-script entry point. A Ctrl-C that lands outside a command's own handling (e.g.
    just after an import committed its last chunk) still ends with one line and exit 130."""
    try:
        app(prog_name="lkmetrics")
    except KeyboardInterrupt:
        typer.echo("Error: interrupted.", err=True)
        raise SystemExit(130) from None
