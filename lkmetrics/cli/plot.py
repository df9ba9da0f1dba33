"""``lkmetrics plot``: charts of recorded sessions, in the terminal, as one offline HTML file,
or as a PNG/SVG image. Wiring only: :mod:`lkmetrics.plots` does the work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lkmetrics.cli.app import app
from lkmetrics.cli.store import By, DbOpt, open_store
from lkmetrics.errors import UsageError

OUT_SUFFIXES = (".html", ".png", ".svg")


@app.command("plot")
def plot_cmd(
    session: Annotated[
        str | None,
        typer.Argument(metavar="[SESSION|last]", show_default=False,
                       help="A session id (or a unique prefix of one), or 'last'. "
                       "Default: all sessions but the benchmarks'."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only records since 30m, 1h, 1d, 2w ago, or since a DATE.",
                     metavar="1h|1d|DATE"),
    ] = None,
    by: Annotated[By | None, typer.Option(
        help="Group the distributions by model, session or kind.")] = None,
    include_bench: Annotated[bool, typer.Option(
        "--include-bench", help="With no SESSION, also the sessions of `bench llm` and "
        "`bench voice`.")] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, metavar="FILE",
                     help="Write report.html (one offline file), or a .png/.svg image; "
                     "without it, charts in the terminal."),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Chart the recorded figures: per-turn stages and each figure's distribution (CDF with
    p50 and p95); the HTML file and images add LLM TTFT per request, e2e per turn, tokens per
    request and the summary table.

    Terminal charts and images need the plots extra (pip install 'lkmetrics\\[plots]');
    the HTML file needs nothing and opens offline.
    """
    from lkmetrics.analysis import report
    from lkmetrics.plots import data as plot_data

    if out is not None and out.suffix.lower() not in OUT_SUFFIXES:
        raise UsageError(f"--out expects a .html, .png or .svg file (got {out}).")
    with open_store(db) as store:
        store.require_sessions()
        selection = report.select(store, session, since, include_bench=include_bench)
        data = plot_data.load(store, selection, by.value if by else None)
    if out is None:
        from lkmetrics.plots.terminal import draw

        draw(data, sys.stdout, color=sys.stdout.isatty())
        return
    try:
        if out.suffix.lower() == ".html":
            from lkmetrics.plots.html import charts, page

            out.write_text(page(data), encoding="utf-8")
            n = len(charts(data))
        else:
            from lkmetrics.plots.image import write_image

            n = write_image(data, out)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}.") from None
    print(f"wrote {out} ({n} charts)", file=sys.stderr)
