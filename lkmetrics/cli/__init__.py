"""The command line, Typer wiring only: ``app`` (the Typer app and error mapping), ``root``
(the main callback), ``options`` (shared options, declared once, and the output-format
resolution), ``agent`` (commands that run an agent), ``store`` (commands over the recorded
sessions), ``plot`` (charts), ``bench`` and ``prices``."""

from __future__ import annotations

from lkmetrics.cli import agent, plot, root, store  # noqa: F401  (registers the commands)
from lkmetrics.cli.app import app, main
from lkmetrics.cli.bench import bench_app
from lkmetrics.cli.prices import prices

app.add_typer(bench_app, name="bench")
app.command("prices")(prices)

__all__ = ["app", "main"]
