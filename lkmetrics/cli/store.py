"""The store commands: sessions, report, compare, export and import.

Each command is a docstring, options and a call into :mod:`lkmetrics.analysis` /
:mod:`lkmetrics.store`; errors are LkmetricsError subclasses that the app turns into one-line
messages and exit codes. Nothing here imports livekit.
"""

from __future__ import annotations

import inspect
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lkmetrics.cli.app import app
from lkmetrics.cli.options import format_option, given_on_command_line, resolve_format
from lkmetrics.cli.prices import PricesOpt
from lkmetrics.config.defaults import OutputFormat
from lkmetrics.figures import FIGURES, PERCENTILE_HELP

if TYPE_CHECKING:
    from lkmetrics.store import Store


class By(str, Enum):
    model = "model"
    session = "session"
    kind = "kind"
    tool = "tool"


class CompareBy(str, Enum):
    session = "session"
    model = "model"


TABLE_FORMATS = (OutputFormat.table, OutputFormat.json, OutputFormat.csv)
COMPARE_FORMATS = (OutputFormat.table, OutputFormat.json)
EXPORT_FORMATS = (OutputFormat.jsonl, OutputFormat.csv)


def _format(ctx: typer.Context, own: str | None, allowed: tuple[OutputFormat, ...]
            ) -> OutputFormat:
    """This command's --format, or one typed before the command; LKMETRICS_FORMAT is for agent
    records only, so it does not apply here."""
    return resolve_format(ctx, own, allowed, allowed[0], parent_env=False)


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


def _price_book(prices: Path | None) -> Any:
    from lkmetrics.cost.prices import load_default

    return load_default(prices)


def open_store(db: Path | None, *, create: bool = False) -> Store:
    """The store of a command: one that only reads (``create=False``) also reads a store it
    cannot write, read-only."""
    from lkmetrics.store import Store, default_db_path

    return Store.open(db if db is not None else default_db_path(), create=create,
                      reader=not create)


@app.command("sessions")
def sessions(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Show this many sessions; 0 shows all.")
    ] = 20,
    fmt: Annotated[str | None, format_option(TABLE_FORMATS)] = None,
    db: DbOpt = None,
) -> None:
    """List recorded sessions, newest first: models, turns, p50 turn latency, duration."""
    out_format = _format(ctx, fmt, TABLE_FORMATS)
    from lkmetrics.analysis import report
    from lkmetrics.render import tables

    with open_store(db) as store:
        # 0, a negative or a limit beyond any store's size: every session
        items = report.overview(store, limit if 0 < limit <= 2**31 else None)
    tables.sessions(items, out_format.value, sys.stdout)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(
            metavar="[SESSION|last]",
            help="A session id (or a unique prefix of one), or 'last'. Default: all sessions "
            "but the benchmarks'.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only records since 30m, 1h, 1d, 2w ago, or since a DATE "
                     "(2025-11-27 or 2025-11-27T14:00, local time).", metavar="1h|1d|DATE"),
    ] = None,
    include_bench: Annotated[bool, typer.Option(
        "--include-bench", help="With no SESSION, also the sessions of `bench llm` and "
        "`bench voice` (left out by default: concurrent benchmark requests are not an "
        "agent's turns).")] = False,
    by: Annotated[By | None, typer.Option(help="Group the figures by model, session or kind.")
                  ] = None,
    bench: Annotated[str | None, typer.Option(
        "--bench", metavar="ID|last",
        help="Only the sessions of this bench run (`bench voice` and `bench llm` print its "
        "id; `sessions` shows it next to the command); with --by session, one group per "
        "caller or run.")] = None,
    agent: Annotated[str | None, typer.Option(
        "--agent", metavar="NAME",
        help="Only the sessions of this user agent (`--agent` runs): its file, module:NAME, "
        "module or NAME.")] = None,
    fmt: Annotated[str | None, format_option(TABLE_FORMATS)] = None,
    fail_over: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-over",
            metavar="FIGURE.STAT=LIMIT",
            help="A latency budget, e.g. e2e.p95=1.2s or llm.ttft.p50=500ms; repeatable. "
            "Exit 1 naming every broken budget. A time's LIMIT is a ceiling; for "
            "llm.decode_rate (higher is better) it is a floor. FIGURE: "
            f"{', '.join(f.name for f in FIGURES)}, cost.turn, cost.session (USD, e.g. "
            "cost.turn.p95=0.002); STAT: mean, p50, p90, p95, p99, max.",
            show_default=False,
        ),
    ] = None,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="A --fail-over budget over a figure with no values is not "
        "checked (without it, it is broken: a session that measured nothing fails).")] = False,
    allow_status: Annotated[list[str] | None, typer.Option(
        "--allow-status", metavar="STATUS",
        help="With --fail-over, accept checked sessions that ended with STATUS (e.g. "
        "interrupted); repeatable. Without it, any status but ok fails the check.",
        show_default=False)] = None,
    db: DbOpt = None,
    prices: PricesOpt = None,
) -> None:
    """Summarise recorded figures: count, mean, p50, p90, p95, p99 and max of each.

    Figures: LLM time to first token, LLM duration, decode rate, TTS first byte, STT duration,
    end-of-utterance delay, transcription delay, turn e2e latency and heard latency (simulated
    callers only); then token totals and
    usage per model. --fail-over FIGURE.STAT=LIMIT makes it a CI latency budget (exit 1).
    """
    out_format = _format(ctx, fmt, TABLE_FORMATS)
    from lkmetrics.analysis import budgets, report
    from lkmetrics.render import tables

    wanted = [budgets.parse_budget(spec) for spec in fail_over or []]
    with open_store(db) as store:
        selection = report.select(store, session, since, bench, agent,
                                  include_bench=include_bench)
        result = report.summarise(store, selection, by.value if by else None,
                                  _price_book(prices), detail=out_format.value == "json",
                                  reprice=given_on_command_line(ctx, "prices"))
        statuses = report.statuses(store, selection) if wanted else {}
    checked = budgets.check_budgets(result, wanted, allow_empty=allow_empty)
    tables.report(result, out_format.value, sys.stdout, checked)
    if checked:
        sys.stdout.flush()
        tables.budgets(checked, sys.stderr)
        budgets.fail_on_broken(checked)
        budgets.check_statuses(statuses, allow_status or [])


report_cmd.__doc__ = f"{inspect.cleandoc(report_cmd.__doc__ or '')}\n\n{PERCENTILE_HELP}"


@app.command("compare")
def compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Session A (id, prefix or 'last'), or model A.")],
    b: Annotated[str, typer.Argument(help="Session B (id, prefix or 'last'), or model B.")],
    by: Annotated[CompareBy, typer.Option(help="Compare two sessions or two models.")] = (
        CompareBy.session
    ),
    fmt: Annotated[str | None, format_option(COMPARE_FORMATS)] = None,
    db: DbOpt = None,
    prices: PricesOpt = None,
) -> None:
    """Compare two sessions, or two models (--by model), side by side.

    For each figure: p50 and p95 of A and B, the difference (B - A) and the ratio (B / A),
    with a verdict for B (better, worse or unclear) from a bootstrap interval of each
    difference.
    """
    out_format = _format(ctx, fmt, COMPARE_FORMATS)
    from lkmetrics.analysis import compare as comparison
    from lkmetrics.render import tables

    with open_store(db) as store:
        result = comparison.compare(store, a, b, by.value, _price_book(prices),
                                reprice=given_on_command_line(ctx, "prices"))
    tables.compare(result, out_format.value, sys.stdout)


@app.command("export")
def export(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(metavar="[SESSION]",
                       help="A session id (or prefix), or 'last'. Default: all sessions.",
                       show_default=False),
    ] = None,
    fmt: Annotated[str | None, format_option(EXPORT_FORMATS)] = None,
    db: DbOpt = None,
) -> None:
    """Write recorded records to stdout as JSON lines or CSV, streaming.

    JSON lines are exactly as recorded (`lkmetrics import` reads them back); CSV has the
    envelope, the figures, the tokens and the whole JSON record.
    """
    out_format = _format(ctx, fmt, EXPORT_FORMATS)
    from lkmetrics.errors import Interrupted
    from lkmetrics.store.export import export_csv, export_jsonl

    with open_store(db) as store:
        store.require_sessions()
        ids = ([store.resolve_session(session)] if session is not None
               else store.session_ids_oldest_first())
        try:
            if out_format is OutputFormat.csv:
                export_csv(store, ids, sys.stdout)
            else:
                export_jsonl(store, ids, sys.stdout)
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


@app.command("import")
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
    from lkmetrics.render.progress import MAX_BAD_LINES_SHOWN, ImportView
    from lkmetrics.store import check_import_paths
    from lkmetrics.store.importer import import_files

    check_import_paths(files)  # before a database is created or a bar is shown
    view = ImportView()
    shown = 0

    def on_bad(name: str, lineno: int, reason: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= MAX_BAD_LINES_SHOWN:
            view.say(f"{name}:{lineno}: skipped: {reason}")

    with open_store(db, create=True) as store, view.showing(files):
        result = import_files(store, files, on_bad, progress=view.advance)
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
