"""``lkmetrics export``: records out as JSON lines (exactly as recorded) or CSV, streaming in
constant memory, oldest session first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from lkmetrics.safety import csv_writer
from lkmetrics.store.rows import FIGURE_COLUMN_LIST, TOKEN_COLUMNS

if TYPE_CHECKING:
    from lkmetrics.store.queries import Store

EXPORT_CSV_COLUMNS = (
    "session_id", "seq", "kind", "time", "model", *FIGURE_COLUMN_LIST, *TOKEN_COLUMNS, "json",
)


def export_jsonl(store: Store, session_ids: Sequence[str], out: TextIO) -> int:
    """Write the records of the sessions, in order, as JSON lines; constant memory."""
    n = 0
    with store.errors():
        for sid in session_ids:
            cur = store.conn.execute(
                "SELECT json FROM records WHERE session_id = ? ORDER BY seq", (sid,)
            )
            while True:
                rows = cur.fetchmany(2000)
                if not rows:
                    break
                out.write("".join(r[0] + "\n" for r in rows))
                n += len(rows)
    return n


def export_csv(store: Store, session_ids: Sequence[str], out: TextIO) -> int:
    """Write the records as CSV: envelope, indexed figures, tokens and the whole JSON; a
    cell a spreadsheet would run as a formula is neutralised (lkmetrics.safety.csv_cell)."""
    writer = csv_writer(out)
    writer.writerow(EXPORT_CSV_COLUMNS)
    cols = ", ".join(EXPORT_CSV_COLUMNS)
    n = 0
    with store.errors():
        for sid in session_ids:
            cur = store.conn.execute(
                f"SELECT {cols} FROM records WHERE session_id = ? ORDER BY seq", (sid,)
            )
            while True:
                rows = cur.fetchmany(2000)
                if not rows:
                    break
                writer.writerows(rows)
                n += len(rows)
    return n
