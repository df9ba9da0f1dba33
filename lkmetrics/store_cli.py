"""The store commands (sessions, report, compare, export, import), registered on the main app.

Each command is a docstring, options and a call into :mod:`lkmetrics.report` /
:mod:`lkmetrics.store`; errors are LkmetricsError subclasses that cli.py turns into one-line
messages and exit codes. Nothing here imports livekit.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from lkmetrics.cost.cli import PricesOpt
from lkmetrics.report import PERCENTILE_HELP

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from lkmetrics.store import Store


class By(str, Enum):
    model = "model"
    session = "session"
    kind = "kind"


class CompareBy(str, Enum):
    session = "session"
    model = "model"


class TableFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class CompareFormat(str, Enum):
    table = "table"
    json = "json"


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="PATH",
        help="The metrics database (default: $LKMETRICS_HOME/metrics.db, else metrics.db in "
        "the per-user app dir).",
        show_default=False,
    ),
]


F = TypeVar("F", TableFormat, CompareFormat, ExportFormat)


def given_on_command_line(ctx: Any, name: str) -> bool:
    """Whether option ``name`` of ``ctx`` (a typer.Context or its click parent) was typed."""
    return getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"


def _format(ctx: typer.Context, fmt: F) -> F:
    """This command's --format or, when it has none, a --format given before the command
    (``lkmetrics --format json report``), which must be one this command takes."""
    from lkmetrics.errors import UsageError

    parent = ctx.parent
    if (parent is None or given_on_command_line(ctx, "fmt")
            or not given_on_command_line(parent, "fmt")):
        return fmt
    value = str(parent.params["fmt"]).strip().lower()
    try:
        return type(fmt)(value)
    except ValueError:
        choices = ", ".join(m.value for m in type(fmt))
        raise UsageError(
            f"--format {value} does not apply to `lkmetrics {ctx.info_name}`, whose --format "
            f"takes {choices}; pass one of those after the command."
        ) from None


def _price_book(prices: Path | None) -> Any:
    from lkmetrics.cost.prices import load_default

    return load_default(prices)


def _open(db: Path | None, *, create: bool = False) -> Store:
    from lkmetrics.store import Store, default_db_path

    return Store.open(db if db is not None else default_db_path(), create=create)


def sessions(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Show this many sessions; 0 shows all.")
    ] = 20,
    fmt: Annotated[TableFormat, typer.Option("--format", "-f", help="Output format.")] = (
        TableFormat.table
    ),
    db: DbOpt = None,
) -> None:
    """List recorded sessions, newest first: models, turns, p50 turn latency, duration."""
    fmt = _format(ctx, fmt)
    from lkmetrics import render_report, report

    with _open(db) as store:
        items = report.overview(store, limit if limit > 0 else None)
    render_report.sessions(items, fmt.value, sys.stdout)


def report_cmd(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(
            metavar="[SESSION|last]",
            help="A session id (or a unique prefix of one), or 'last'. Default: all sessions.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only records since 30m, 1h, 1d, 2w ago, or since a DATE "
                     "(2025-11-27 or 2025-11-27T14:00, local time).", metavar="1h|1d|DATE"),
    ] = None,
    by: Annotated[By | None, typer.Option(help="Group the figures by model, session or kind.")
                  ] = None,
    fmt: Annotated[TableFormat, typer.Option("--format", "-f", help="Output format.")] = (
        TableFormat.table
    ),
    fail_over: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-over",
            metavar="FIGURE.STAT=LIMIT",
            help="A latency budget, e.g. e2e.p95=1.2s or llm.ttft.p50=500ms; repeatable. "
            "Exit 1 naming every broken budget. FIGURE: e2e, llm.ttft, llm.duration, "
            "llm.decode_rate (tok/s), tts.ttfb, stt.duration, eou.delay, "
            "eou.transcription_delay, cost.turn, cost.session (USD, e.g. cost.turn.p95=0.002); "
            "STAT: mean, p50, p90, p95, p99, max.",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    prices: PricesOpt = None,
) -> None:
    """Summarise recorded figures: count, mean, p50, p90, p95, p99 and max of each.

    Figures: LLM time to first token, LLM duration, decode rate, TTS first byte, STT duration,
    end-of-utterance delay, transcription delay and turn e2e latency; then token totals and
    usage per model. --fail-over FIGURE.STAT=LIMIT makes it a CI latency budget (exit 1).
    """
    fmt = _format(ctx, fmt)
    from lkmetrics import render_report, report

    budgets = [report.parse_budget(spec) for spec in fail_over or []]
    with _open(db) as store:
        selection = report.select(store, session, since)
        result = report.summarise(store, selection, by.value if by else None,
                                  _price_book(prices))
    checked = report.check_budgets(result, budgets)
    render_report.report(result, fmt.value, sys.stdout, checked)
    if checked:
        sys.stdout.flush()
        render_report.budgets(checked, sys.stderr)
        report.fail_on_broken(checked)


report_cmd.__doc__ = f"{inspect.cleandoc(report_cmd.__doc__ or '')}\n\n{PERCENTILE_HELP}"


def compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Session A (id, prefix or 'last'), or model A.")],
    b: Annotated[str, typer.Argument(help="Session B (id, prefix or 'last'), or model B.")],
    by: Annotated[CompareBy, typer.Option(help="Compare two sessions or two models.")] = (
        CompareBy.session
    ),
    fmt: Annotated[CompareFormat, typer.Option("--format", "-f", help="Output format.")] = (
        CompareFormat.table
    ),
    db: DbOpt = None,
    prices: PricesOpt = None,
) -> None:
    """Compare two sessions, or two models (--by model), side by side.

    For each figure: p50 and p95 of A and B, the difference (B - A) and the ratio (B / A),
    with B marked faster or slower.
    """
    fmt = _format(ctx, fmt)
    from lkmetrics import render_report, report

    with _open(db) as store:
        result = report.compare(store, a, b, by.value, _price_book(prices))
    render_report.compare(result, fmt.value, sys.stdout)


def export(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(metavar="[SESSION]",
                       help="A session id (or prefix), or 'last'. Default: all sessions.",
                       show_default=False),
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = (
        ExportFormat.jsonl
    ),
    db: DbOpt = None,
) -> None:
    """Write recorded records to stdout as JSON lines or CSV, streaming.

    JSON lines are exactly as recorded (`lkmetrics import` reads them back); CSV has the
    envelope, the figures, the tokens and the whole JSON record.
    """
    fmt = _format(ctx, fmt)
    from lkmetrics.store import Interrupted

    with _open(db) as store:
        store.require_sessions()
        ids = ([store.resolve_session(session)] if session is not None
               else store.session_ids_oldest_first())
        try:
            if fmt is ExportFormat.csv:
                store.export_csv(ids, sys.stdout)
            else:
                store.export_jsonl(ids, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()  # the reader went away (| head): stop without a traceback
        except KeyboardInterrupt:
            raise Interrupted("export interrupted; the output is incomplete.") from None


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


MAX_BAD_LINES_SHOWN = 20


class _ImportView:
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
    def showing(self, files: list[Path]) -> Iterator[_ImportView]:
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
        with Progress(*columns, console=console, transient=True) as bar:
            self._bar, self._task = bar, bar.add_task("Importing", total=total)
            try:
                yield self
            finally:
                self._bar = self._task = None


def import_(
    files: Annotated[
        list[Path],
        typer.Argument(help="JSON lines files written by --output ('-' reads stdin).",
                       show_default=False),
    ],
    db: DbOpt = None,
) -> None:
    """Import the JSON lines written by --output into the store.

    Bad lines are reported with their file and line number and skipped; records already in
    the store are not imported twice.
    """
    from lkmetrics.errors import StoreError
    from lkmetrics.store import check_import_paths

    check_import_paths(files)  # before a database is created or a bar is shown
    view = _ImportView()
    shown = 0

    def on_bad(name: str, lineno: int, reason: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= MAX_BAD_LINES_SHOWN:
            view.say(f"{name}:{lineno}: skipped: {reason}")

    with _open(db, create=True) as store, view.showing(files):
        result = store.import_files(files, on_bad, progress=view.advance)
        path = store.path
    if result.bad > MAX_BAD_LINES_SHOWN:
        typer.echo(f"... and {result.bad - MAX_BAD_LINES_SHOWN} more bad lines", err=True)
    typer.echo(
        f"Imported {result.imported:,} records into {path} ({result.duplicates:,} already "
        f"there, {result.bad:,} bad lines skipped).",
        err=True,
    )
    if result.bad and not result.imported and not result.duplicates:
        raise StoreError(f"no valid records in {', '.join(map(str, files))}; nothing imported.")


def register(app: typer.Typer) -> None:
    """Add sessions, report, compare, export and import to ``app``."""
    app.command("sessions")(sessions)
    app.command("report")(report_cmd)
    app.command("compare")(compare)
    app.command("export")(export)
    app.command("import")(import_)
