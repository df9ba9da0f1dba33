"""The command line, Typer wiring only: ``app`` (the Typer app, its lazily loaded commands and
error mapping), ``root`` (the main callback), ``options`` (shared options, declared once, and the
output-format resolution), ``agent`` (commands that run an agent), ``store`` (commands over the
recorded sessions), ``plot`` (charts), ``bench`` and ``prices``.

Importing this package loads only the app and its main callback: a command's module is imported
when that command is looked up (:data:`lkmetrics.cli.app.COMMANDS`), so ``lkmetrics --help``
stays fast."""

from __future__ import annotations

from lkmetrics.cli import root  # noqa: F401  (registers the main callback)
from lkmetrics.cli.app import app, main

__all__ = ["app", "main"]
