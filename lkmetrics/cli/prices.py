"""The ``lkmetrics prices`` command and the ``--prices`` option report and compare share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lkmetrics.cli.app import app
from lkmetrics.cli.options import format_option, resolve_format
from lkmetrics.config.defaults import DEFAULT_LLM, OutputFormat
from lkmetrics.cost.prices import PRICES_ENV

PricesOpt = Annotated[
    Path | None,
    typer.Option(
        "--prices", metavar="FILE", envvar=PRICES_ENV, show_envvar=True, dir_okay=False,
        help="A JSON prices file (USD) whose entries override or extend the shipped STT/TTS "
        "prices and genai-prices' LLM prices; format in README, section Cost.",
        show_default=False,
    ),
]


PRICES_FORMATS = (OutputFormat.table, OutputFormat.json)


def prices(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Argument(metavar="[MODEL]", show_default=False,
                       help="PROVIDER/MODEL (e.g. openai/gpt-4.1-mini, deepgram/nova-3) or a "
                       "model name. Default: every price in the files, and the default "
                       "LLM's."),
    ] = None,
    fmt: Annotated[str | None, format_option(PRICES_FORMATS)] = None,
    prices_file: PricesOpt = None,
) -> None:
    """Show the prices lkmetrics knows: unit prices in USD, source and date.

    STT is priced per minute of audio and TTS per 1M characters, from the file shipped with
    lkmetrics and --prices FILE; LLM tokens from the genai-prices package (offline) unless a
    file prices the model. Check a figure of `lkmetrics report` by hand with these.
    """
    from lkmetrics.cost import view
    from lkmetrics.cost.prices import load_default
    from lkmetrics.errors import NotFoundError

    out_format = resolve_format(ctx, fmt, PRICES_FORMATS, OutputFormat.table, parent_env=False)
    book = load_default(prices_file)
    found = book.lookup_name(model) if model else view.listing(book, DEFAULT_LLM)
    if model and not found:
        raise NotFoundError(f"no price known for {model!r}; add one with --prices FILE "
                            "(format in README, section Cost).")
    view.prices(found, out_format.value, sys.stdout, book, listing=model is None)


app.command("prices")(prices)
