"""Tables that fit the terminal: columns are dropped, never cut, and rendered as plain text.

Every cell is shown whole: an id, a figure name or a number is never shortened. When the
columns do not fit the width, the least important ones (highest ``drop``) go first; a column
with ``drop=0`` always stays. Rendering is plain string work (no Rich), so a report of
thousands of rows prints in milliseconds.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from lkmetrics.safety import printable, unicode_ok

MIN_WIDTH = 40

# the rules drawn in ASCII on a stream that cannot encode box drawing (LC_ALL=C, ascii)
ASCII_RULES = str.maketrans("─┌┬┐├┼┤└┴┘│", "-+++++++++|")


def terminal_width(default: int = 80) -> int:
    """The width to lay out for: ``COLUMNS``, else the terminal's, else ``default``."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(MIN_WIDTH, int(env))
    return max(MIN_WIDTH, shutil.get_terminal_size((default, 24)).columns)


@dataclass
class Column:
    """One column: its header, its cells (one per row), alignment and drop order."""

    header: str
    cells: list[str] = field(default_factory=list)
    right: bool = False
    drop: int = 0  # 0: always shown; higher numbers are dropped first

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])


def _table_width(columns: Sequence[Column]) -> int:
    # "│ a │ b │": each column has a space either side and a rule after it, plus the first
    return sum(c.width + 3 for c in columns) + 1


def fit(columns: Sequence[Column], width: int) -> list[Column]:
    """The columns that fit ``width``, dropping the most droppable first (order kept)."""
    kept = list(columns)
    while _table_width(kept) > width:
        droppable = [c for c in kept if c.drop > 0]
        if not droppable:
            break
        worst = max(droppable, key=lambda c: (c.drop, kept.index(c)))
        kept.remove(worst)
    return kept


@dataclass
class Layout:
    """A table to render: a title, columns, rows grouped in sections, and notes below."""

    title: str
    columns: list[Column]
    sections: list[tuple[str | None, int]] = field(default_factory=list)  # (heading, rows)
    notes: list[str] = field(default_factory=list)

    def render(self, width: int | None = None, *, ascii: bool | None = None) -> str:
        """The table as text lines no wider than ``width`` (unless a kept column is). Every
        value is shown printable (lkmetrics.safety.printable: a control character or a newline
        never reaches the terminal); ``ascii`` (default: when stdout cannot encode box
        drawing) draws the rules in ASCII."""
        width = terminal_width() if width is None else width
        ascii = not unicode_ok(sys.stdout) if ascii is None else ascii
        columns = [replace(c, header=printable(c.header), cells=[printable(x) for x in c.cells])
                   for c in self.columns]
        cols = fit(columns, width)
        widths = [c.width for c in cols]
        inner = sum(w + 3 for w in widths) - 1

        def rule(left: str, mid: str, right: str, fill: str = "─") -> str:
            return left + mid.join(fill * (w + 2) for w in widths) + right

        def line(cells: Sequence[str], rights: Sequence[bool]) -> str:
            parts = [(c.rjust(w) if r else c.ljust(w))
                     for c, w, r in zip(cells, widths, rights, strict=True)]
            return "│ " + " │ ".join(parts) + " │"

        out = [printable(line) for line in self.title.split("\n")]
        out.append(rule("┌", "┬", "┐"))
        out.append(line([c.header for c in cols], [c.right for c in cols]))
        out.append(rule("├", "┼", "┤", "─"))
        sections = self.sections or [(None, len(cols[0].cells) if cols else 0)]
        row = 0
        for i, (heading, n) in enumerate(sections):
            if i:
                out.append(rule("├", "┼", "┤"))
            if heading is not None:
                out.append("│ " + printable(heading).ljust(inner - 1) + "│")
            for r in range(row, row + n):
                out.append(line([c.cells[r] for c in cols], [c.right for c in cols]))
            row += n
        out.append(rule("└", "┴", "┘"))
        dropped = [c.header for c in columns if all(c is not k for k in cols)]
        if dropped:
            out.append(f"(hidden at {width} columns: {', '.join(dropped)})")
        out.extend(printable(n) for n in self.notes)
        text = "\n".join(out) + "\n"
        return text.translate(ASCII_RULES) if ascii else text
