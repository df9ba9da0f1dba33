"""The main callback: global options, bare ``lkmetrics`` prints help, global options alone run
``console``."""

from __future__ import annotations

from typing import Annotated

import typer

from lkmetrics.cli.app import app
from lkmetrics.cli.options import EnvFileOpt, FormatOpt, OutputOpt, given_on_command_line
from lkmetrics.version import __version__


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
