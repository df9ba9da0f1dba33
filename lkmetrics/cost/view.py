"""Output of ``lkmetrics prices``: a Rich table for people, JSON lines for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO

from lkmetrics.cost.prices import UNITS, Price, PriceBook


def price_dict(p: Price) -> dict[str, object]:
    return {"type": p.kind, "model": p.model, "currency": "USD", **p.rates,
            "source": p.source, "date": p.date or None, "aliases": list(p.aliases),
            **({"note": p.note} if p.note else {}), "local": p.local}


def _rates(p: Price) -> str:
    if p.local:
        return "0 (runs locally)"
    text = "; ".join(f"{v:g} {UNITS[k]}" for k, v in p.rates.items())
    return text or p.note


def prices(found: Sequence[Price], fmt: str, out: IO[str], book: PriceBook) -> None:
    if fmt == "json":
        for p in found:
            out.write(json.dumps(price_dict(p), separators=(",", ":")) + "\n")
        return
    from rich.table import Table

    from lkmetrics.safety import console

    files = ", ".join(map(str, book.files)) or "none"
    t = Table(title=f"Prices in USD (user prices file: {files})", title_justify="left")
    for name in ("Type", "Model", "Unit prices", "Source", "Date"):
        t.add_column(name, overflow="fold")
    for p in found:
        t.add_row(p.kind, p.model, _rates(p), p.source, p.date or "-")
    console(file=out, soft_wrap=False).print(t)
