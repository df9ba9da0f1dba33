"""Output of the store commands: Rich tables for people, JSON lines and CSV for programs.

Data goes to the ``out`` stream (stdout); notes such as budget checks go to stderr. JSON output
is one JSON document per line, so ``| jq`` always works. Rich loads only for tables.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from lkmetrics.analysis.budgets import BudgetResult
from lkmetrics.analysis.report import PERCENTILE_HELP, Comparison, Report, SessionOverview
from lkmetrics.analysis.stats import STAT_NAMES
from lkmetrics.render.units import count, elapsed, fmt_value, ratio, signed, timestamp

if TYPE_CHECKING:
    from rich.console import Console


def _console(out: IO[str]) -> Console:
    from rich.console import Console

    return Console(file=out, highlight=False, soft_wrap=False)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# -- sessions ---------------------------------------------------------------------------------

SESSION_CSV_COLUMNS = (
    "id", "started", "ended", "duration", "command", "stt", "llm", "tts", "voice", "host",
    "lkmetrics_version", "livekit_agents_version", "exit_status", "turns", "p50_e2e",
    "bench_id",
)


def _session_dict(item: SessionOverview) -> dict[str, Any]:
    s = item.session
    return {
        "id": s.id, "started": s.started, "ended": s.ended, "duration": s.duration,
        "command": s.command, "stt": s.stt, "llm": s.llm, "tts": s.tts, "voice": s.voice,
        "host": s.host, "lkmetrics_version": s.lkmetrics_version,
        "livekit_agents_version": s.livekit_agents_version, "exit_status": s.exit_status,
        "turns": item.turns, "p50_e2e": item.p50_e2e, "bench_id": item.bench_id,
    }


def sessions(items: Sequence[SessionOverview], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        for item in items:
            out.write(_dumps(_session_dict(item)) + "\n")
        return
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(SESSION_CSV_COLUMNS)
        for item in items:
            d = _session_dict(item)
            w.writerow([d[c] for c in SESSION_CSV_COLUMNS])
        return
    from rich.table import Table

    table = Table(title="Sessions (newest first)", title_justify="left")
    for name, justify in (("Session", "left"), ("Started", "left"), ("Command", "left"),
                          ("STT", "left"), ("LLM", "left"), ("TTS", "left"),
                          ("Turns", "right"), ("p50 e2e", "right"), ("Duration", "right"),
                          ("Status", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for item in items:
        s = item.session
        table.add_row(
            s.id, timestamp(s.started),
            f"{s.command or '-'} {item.bench_id}" if item.bench_id else s.command or "-",
            s.stt or "-", s.llm or "-",
            s.tts or "-", str(item.turns), fmt_value(item.p50_e2e, "s"),
            elapsed(s.duration), s.exit_status or "-",
        )
    _console(out).print(table)


# -- report -----------------------------------------------------------------------------------

REPORT_CSV_COLUMNS = ("group", "figure", "title", "unit", *STAT_NAMES)


def _report_dict(report: Report, budgets: Sequence[BudgetResult]) -> dict[str, Any]:
    return {
        "scope": report.description,
        "by": report.by,
        "percentile": PERCENTILE_HELP,
        "figures": [
            {"group": r.group, "figure": r.figure.name, "title": r.figure.title,
             "unit": r.figure.unit, **r.stats}
            for r in report.rows
        ],
        "tokens": [
            {"model": t.model, "requests": t.requests, "prompt_tokens": t.prompt_tokens,
             "completion_tokens": t.completion_tokens, "total_tokens": t.total_tokens}
            for t in report.tokens
        ],
        "usage": report.usage,
        **({"kinds": report.kinds} if report.by == "kind" else {}),
        **({"budgets": [_budget_dict(b) for b in budgets]} if budgets else {}),
    }


def _budget_dict(b: BudgetResult) -> dict[str, Any]:
    return {"budget": b.budget.spec, "group": b.group, "value": b.value, "limit": b.budget.limit,
            "broken": b.broken, "checked": b.value is not None}


def report(report: Report, fmt: str, out: IO[str],
           budgets: Sequence[BudgetResult] = ()) -> None:
    if fmt == "json":
        out.write(_dumps(_report_dict(report, budgets)) + "\n")
        return
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(REPORT_CSV_COLUMNS)
        for r in report.rows:
            w.writerow([r.group, r.figure.name, r.figure.title, r.figure.unit,
                        *(r.stats[k] for k in STAT_NAMES)])
        return
    from rich.table import Table

    console = _console(out)
    grouped = report.by is not None
    table = Table(title=f"Figures: {report.description}", title_justify="left",
                  caption="percentiles: linear interpolation between nearest ranks",
                  caption_justify="left")
    if grouped:
        table.add_column(report.by.capitalize() if report.by else "Group")
    table.add_column("Figure")
    for name in STAT_NAMES:
        table.add_column(name, justify="right")
    last_group = None
    for r in report.rows:
        cells = [str(r.stats["count"])]
        cells += [fmt_value(r.stats[k], r.figure.unit) for k in STAT_NAMES[1:]]
        if grouped:
            if last_group is not None and r.group != last_group:
                table.add_section()
            group_cell = r.group if r.group != last_group else ""
            last_group = r.group
            table.add_row(group_cell, r.figure.name, *cells)
        else:
            table.add_row(r.figure.name, *cells)
    console.print(table)
    if report.tokens:
        t = Table(title="LLM tokens per model", title_justify="left")
        for name, justify in (("Model", "left"), ("Requests", "right"), ("Prompt", "right"),
                              ("Completion", "right"), ("Total", "right")):
            t.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in report.tokens:
            t.add_row(row.model, f"{row.requests:,}", f"{row.prompt_tokens:,}",
                      f"{row.completion_tokens:,}", f"{row.total_tokens:,}")
        console.print(t)
    if report.usage:
        u = Table(title="Usage per model (last usage record of each session)",
                  title_justify="left")
        u.add_column("Type")
        u.add_column("Model")
        u.add_column("Sessions", justify="right")
        u.add_column("Usage")
        for entry in report.usage:
            rest = ", ".join(f"{k}={count(v)}" for k, v in entry.items()
                             if k not in ("type", "model", "sessions"))
            u.add_row(str(entry["type"]), str(entry["model"]), str(entry["sessions"]), rest)
        console.print(u)
    if report.kinds:
        k = Table(title="Records per kind", title_justify="left")
        k.add_column("Kind")
        k.add_column("Records", justify="right")
        for kind, n in report.kinds.items():
            k.add_row(kind, f"{n:,}")
        console.print(k)


def budgets(results: Sequence[BudgetResult], err: IO[str]) -> None:
    """One line per budget on stderr: ok, BROKEN, or not checked (no values)."""
    for r in results:
        unit = r.budget.figure.unit
        where = "" if r.group == "all" else f" [{r.group}]"
        limit = fmt_value(r.budget.limit, unit)
        if r.value is None:
            state = "not checked: no values"
        else:
            state = ("BROKEN" if r.broken else "ok") + f": {fmt_value(r.value, unit)}"
        err.write(f"budget {r.budget.figure.name}.{r.budget.stat} <= {limit}{where}: {state}\n")


# -- compare ----------------------------------------------------------------------------------


def compare(cmp: Comparison, fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        out.write(_dumps({
            "by": cmp.by, "a": cmp.a, "b": cmp.b,
            "figures": [
                {"figure": f.figure.name, "unit": f.figure.unit, "count_a": f.count_a,
                 "count_b": f.count_b,
                 "p50": {"a": f.p50.a, "b": f.p50.b, "diff": f.p50.diff, "ratio": f.p50.ratio},
                 "p95": {"a": f.p95.a, "b": f.p95.b, "diff": f.p95.diff, "ratio": f.p95.ratio},
                 "b_vs_a": f.verdict}
                for f in cmp.figures
            ],
        }) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"A = {cmp.a}   B = {cmp.b}", title_justify="left",
                  caption="diff = B - A, ratio = B / A; faster: lower time or higher rate",
                  caption_justify="left")
    table.add_column("Figure")
    for name in ("A p50", "B p50", "diff", "ratio", "A p95", "B p95", "diff", "ratio"):
        table.add_column(name, justify="right")
    table.add_column("B vs A")
    for f in cmp.figures:
        unit = f.figure.unit
        verdict = f.verdict
        mark = {"faster": "[green]faster[/]", "slower": "[red]slower[/]"}.get(
            verdict or "", verdict or "-"
        )
        table.add_row(
            f.figure.name,
            fmt_value(f.p50.a, unit), fmt_value(f.p50.b, unit), signed(f.p50.diff, unit),
            ratio(f.p50.ratio),
            fmt_value(f.p95.a, unit), fmt_value(f.p95.b, unit), signed(f.p95.diff, unit),
            ratio(f.p95.ratio),
            mark,
        )
    _console(out).print(table)
