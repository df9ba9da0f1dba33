"""The command line: ``app`` (main callback and error mapping), ``options`` (shared options,
declared once, and the output-format resolution), ``agent`` (commands that run an agent) and
``store`` (commands over the recorded sessions) and ``plot`` (charts). Typer wiring only."""

from __future__ import annotations

from lkmetrics.bench.cli import bench_app
from lkmetrics.cli import agent, plot, store  # noqa: F401  (registers the commands)
from lkmetrics.cli.app import app, main
from lkmetrics.cost.cli import prices

app.add_typer(bench_app, name="bench")
app.command("prices")(prices)

__all__ = ["app", "main"]
