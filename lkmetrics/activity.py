"""What a command shows it is busy with on stderr, one live display at a time.

A Rich live display (a progress bar, a spinner) redraws its line in place; two at once draw
over each other (``bench voice --llm local``'s spinner for the llama.cpp server and its bar
took turns on one line). So a command's progress bar is registered here while shown
(:func:`showing`), and :func:`status` is a spinner only when no bar is: under a bar, its
message is one line printed above the bar.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

_shown: list[Progress] = []  # the progress bars shown now, innermost last


@contextlib.contextmanager
def showing(bar: Progress) -> Iterator[Progress]:
    """Register ``bar`` (already started) as the live display of stderr while inside."""
    _shown.append(bar)
    try:
        yield bar
    finally:
        _shown.remove(bar)


def current() -> Progress | None:
    """The progress bar shown now, if any."""
    return _shown[-1] if _shown else None


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with ``message`` on stderr while inside (on a terminal); under a progress
    bar, the message printed once above it instead."""
    from rich.console import Console
    from rich.text import Text

    bar = current()
    if bar is not None:
        bar.console.print(Text(message, style="dim"), soft_wrap=True)
        yield
        return
    with Console(stderr=True).status(Text(message)):
        yield
