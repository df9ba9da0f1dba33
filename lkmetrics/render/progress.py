"""What a long store command shows on stderr: a progress bar on a terminal, with messages
printed above it so they do not tear it; plain lines when piped."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

MAX_BAD_LINES_SHOWN = 20


class ImportView:
    """What an import shows on stderr: a line per bad line and, on a terminal, a progress bar
    of input bytes (lines are printed above the bar, so they do not tear it)."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def advance(self, n: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def say(self, line: str) -> None:
        if self._bar is not None:
            from rich.text import Text

            # a Text, not markup=False: that option would also reach the bar's own columns
            self._bar.console.print(Text(line), soft_wrap=True)
        else:
            typer.echo(line, err=True)

    @contextlib.contextmanager
    def showing(self, files: list[Path]) -> Iterator[ImportView]:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            yield self
            return
        # stdin has no size: the bar then counts bytes without a total
        total = None if any(str(p) == "-" for p in files) else sum(
            p.stat().st_size for p in files)
        columns = (
            "[progress.description]{task.description}", BarColumn(), TaskProgressColumn(),
            DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        )
        from lkmetrics.activity import showing

        with Progress(*columns, console=console, transient=True) as bar, showing(bar):
            self._bar, self._task = bar, bar.add_task("Importing", total=total)
            try:
                yield self
            finally:
                self._bar = self._task = None


