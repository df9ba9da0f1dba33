"""Output of ``lkmetrics prices``: a Rich table for people, JSON lines for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO

from lkmetrics.cost.prices import STALE_DAYS, UNITS, Price, PriceBook, stale, stale_note

# what `lkmetrics prices` with no MODEL says about LLM prices (genai-prices has hundreds)
LLM_HINT = ("LLM token prices: the file's llm entries, else the genai-prices package (hundreds "
            "of models, offline); see one with `lkmetrics prices PROVIDER/MODEL`, e.g. "
            "`lkmetrics prices openai/gpt-4o`.")


def price_dict(p: Price, old: bool = False) -> dict[str, object]:
    return {"type": p.kind, "model": p.model, "currency": "USD", **p.rates,
            "source": p.source, "date": p.date or None, "aliases": list(p.aliases),
            **({"note": p.note} if p.note else {}), "local": p.local,
            f"older_than_{STALE_DAYS}_days": old}


def listing(book: PriceBook, default_llm: str) -> list[Price]:
    """Every entry of the files, and the default LLM's price when no file prices it."""
    found = list(book.entries)
    if not any(p.kind == "llm" for p in found):
        provider, _, model = default_llm.rpartition("/")
        llm = book.lookup("llm", provider, model)
        if llm is not None:
            found.append(llm)
    return found


def _rates(p: Price) -> str:
    if p.local:
        return "0 (runs locally)"
    text = "; ".join(f"{v:g} {UNITS[k]}" for k, v in p.rates.items())
    return text or p.note


def prices(found: Sequence[Price], fmt: str, out: IO[str], book: PriceBook, *,
           listing: bool = False) -> None:
    """The prices found; ``listing`` (no MODEL asked for): say how to see LLM prices too."""
    old = {(p.kind, p.model) for p in stale(found)}
    if fmt == "json":
        for p in found:
            out.write(json.dumps(price_dict(p, (p.kind, p.model) in old),
                                 separators=(",", ":")) + "\n")
        return
    from rich.table import Table

    from lkmetrics.safety import console

    files = ", ".join(map(str, book.files)) or "none"
    t = Table(title=f"Prices in USD (user prices file: {files})", title_justify="left")
    for name in ("Type", "Model", "Unit prices", "Source", "Date"):
        t.add_column(name, overflow="fold")
    for p in found:
        t.add_row(p.kind, p.model, _rates(p), p.source, p.date or "-")
    con = console(file=out, soft_wrap=False)
    con.print(t)
    for line in (LLM_HINT if listing else None, stale_note(found)):
        if line:
            con.print(line)
