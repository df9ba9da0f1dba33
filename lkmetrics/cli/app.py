"""The Typer app and the mapping of every LkmetricsError to one line on stderr and its exit
code. Its main callback lives in :mod:`lkmetrics.cli.root`."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from lkmetrics.errors import LkmetricsError


def fail(err: LkmetricsError) -> typer.Exit:
    """Print the one-line message to stderr and give the Exit to raise."""
    from lkmetrics.config import redact

    typer.echo(f"Error: {redact(str(err))}", err=True)
    return typer.Exit(err.exit_code)


class _Group(TyperGroup):
    """Maps every LkmetricsError raised by a command to one line on stderr and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        from lkmetrics.safety import redacted_streams

        with redacted_streams():  # no known secret leaves on stdout or stderr
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


def main() -> None:
    """Console-script entry point. A Ctrl-C that lands outside a command's own handling (e.g.
    just after an import committed its last chunk) still ends with one line and exit 130."""
    try:
        app(prog_name="lkmetrics")
    except KeyboardInterrupt:
        typer.echo("Error: interrupted.", err=True)
        raise SystemExit(130) from None
