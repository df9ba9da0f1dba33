"""Output of the store commands: tables that fit the terminal for people (render.layout), JSON
lines and CSV for programs.

Data goes to the ``out`` stream (stdout); notes such as budget checks go to stderr. JSON output
is one JSON document per line, so ``| jq`` always works. Tables are laid out by
:mod:`lkmetrics.render.layout` to fit the terminal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import IO, Any

from lkmetrics.analysis.budgets import BudgetResult
from lkmetrics.analysis.compare import ComparedStat, Comparison
from lkmetrics.analysis.report import Report, SessionOverview
from lkmetrics.cost.prices import stale, stale_note
from lkmetrics.figures import PERCENTILE_HELP, STAT_NAMES
from lkmetrics.render.layout import Column, Layout
from lkmetrics.safety import csv_writer, printable
from lkmetrics.units import count, elapsed, fmt_value, ratio, short_time, signed


def _dumps(obj: Any) -> str:
    """Strict JSON: a non-finite number (which older stores may hold) is written as null."""
    return json.dumps(_finite(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


# -- sessions ---------------------------------------------------------------------------------

SESSION_CSV_COLUMNS = (
    "id", "started", "ended", "duration", "command", "stt", "llm", "tts", "voice", "host",
    "lkmetrics_version", "livekit_agents_version", "exit_status", "turns", "p50_e2e",
    "bench_id", "agent",
)


def _session_dict(item: SessionOverview) -> dict[str, Any]:
    s = item.session
    return {
        "id": s.id, "started": s.started, "ended": s.ended, "duration": s.duration,
        "command": s.command, "stt": s.stt, "llm": s.llm, "tts": s.tts, "voice": s.voice,
        "host": s.host, "lkmetrics_version": s.lkmetrics_version,
        "livekit_agents_version": s.livekit_agents_version, "exit_status": s.exit_status,
        "turns": item.turns, "p50_e2e": item.p50_e2e, "bench_id": item.bench_id,
        "agent": item.agent,
    }


def sessions(items: Sequence[SessionOverview], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        for item in items:
            out.write(_dumps(_session_dict(item)) + "\n")
        return
    if fmt == "csv":
        w = csv_writer(out)
        w.writerow(SESSION_CSV_COLUMNS)
        for item in items:
            d = _session_dict(item)
            w.writerow([d[c] for c in SESSION_CSV_COLUMNS])
        return
    cols = [
        Column("Session"), Column("Started"), Column("Command", drop=4),
        Column("STT", drop=6), Column("LLM", drop=3), Column("TTS", drop=5),
        Column("Turns", right=True), Column("p50 e2e", right=True),
        Column("Duration", right=True, drop=2), Column("Status", drop=7),
    ]
    for item in items:
        s = item.session
        for col, cell in zip(cols, (
            s.id, short_time(s.started),
            " ".join(x for x in (s.command or "-", item.bench_id, item.agent) if x),
            s.stt or "-", s.llm or "-",
            s.tts or "-", str(item.turns), fmt_value(item.p50_e2e, "s"),
            elapsed(s.duration), s.exit_status or "-",
        ), strict=True):
            col.cells.append(cell)
    out.write(Layout("Sessions (newest first)", cols).render())


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
        **({"cost": _cost_dict(report)} if report.cost is not None else {}),
        **({"budgets": [_budget_dict(b) for b in budgets]} if budgets else {}),
    }


def _budget_dict(b: BudgetResult) -> dict[str, Any]:
    return {"budget": b.budget.spec, "group": b.group, "value": b.value, "limit": b.budget.limit,
            "broken": b.broken, "checked": b.value is not None,
            **({"unknown": list(b.unknown)} if b.unknown else {})}


def _cost_dict(report: Report) -> dict[str, Any]:
    """Totals, cost per minute, per model and per session (with each turn) in USD."""
    cost = report.cost
    assert cost is not None
    return {
        "currency": "USD",
        **cost.totals().as_dict(),
        "per_minute": cost.per_minute(),
        "unknown": cost.unknown,
        "stale_prices": sorted(p.model for p in stale(cost.prices_used())),
        "models": cost.by_model(),
        "sessions": [
            {"session_id": s.session_id, **s.parts.as_dict(), "per_minute": s.per_minute,
             "turns": [{"seq": t.seq, "turn": t.turn, **t.parts.as_dict()} for t in s.turns]}
            for s in cost.sessions
        ],
    }


def _usd(v: float | None) -> str:
    return "unknown" if v is None else fmt_value(v, "USD")


def _cost_tables(report: Report, out: IO[str]) -> None:
    cost = report.cost
    if cost is None or not cost.sessions:
        return
    cols = [Column("Type"), Column("Model"), Column("Sessions", right=True),
            Column("Cost", right=True), Column("Price from", drop=1)]
    for row in cost.by_model():
        source = row["source"] or "no price known"
        if row["date"]:
            source += f" ({row['date']})"
        for col, cell in zip(cols, (row["type"], row["model"], str(row["sessions"]),
                                    _usd(row["cost"]), source), strict=True):
            col.cells.append(cell)
    totals = cost.totals()
    notes = [f"Total cost: {_usd(totals.total)} (llm {_usd(totals.llm)}, stt {_usd(totals.stt)}, "
             f"tts {_usd(totals.tts)}); per minute of session: {_usd(cost.per_minute())}"]
    if cost.unknown:
        notes.append(f"No price for {', '.join(cost.unknown)}: its cost is unknown; add it "
                     "with --prices FILE (see `lkmetrics prices --help`).")
    old = stale_note(cost.prices_used())
    if old:
        notes.append(old)
    out.write(Layout("Cost per model (USD; `lkmetrics prices MODEL` shows the unit prices)",
                     cols, notes=notes).render())


def report(report: Report, fmt: str, out: IO[str],
           budgets: Sequence[BudgetResult] = ()) -> None:
    if fmt == "json":
        out.write(_dumps(_report_dict(report, budgets)) + "\n")
        return
    if fmt == "csv":
        w = csv_writer(out)
        w.writerow(REPORT_CSV_COLUMNS)
        for r in report.rows:
            w.writerow([r.group, r.figure.name, r.figure.title, r.figure.unit,
                        *(r.stats[k] for k in STAT_NAMES)])
        return
    # the stats a narrow terminal drops first: mean, p99, p90, then max
    stat_drop = {"mean": 4, "p99": 3, "p90": 2, "max": 1}
    cols = [Column("Figure"),
            *(Column(n, right=True, drop=stat_drop.get(n, 0)) for n in STAT_NAMES)]
    sections: list[tuple[str | None, int]] = []
    last: str | None = None
    for i, r in enumerate(report.rows):
        if i == 0 or (report.by is not None and r.group != last):
            sections.append((f"{report.by} {r.group}" if report.by else None, 0))
        last = r.group
        sections[-1] = (sections[-1][0], sections[-1][1] + 1)
        cells = [r.figure.name, str(r.stats["count"])]
        cells += [fmt_value(r.stats[k], r.figure.unit) for k in STAT_NAMES[1:]]
        for col, cell in zip(cols, cells, strict=True):
            col.cells.append(cell)
    out.write(Layout(f"Figures: {report.description}", cols, sections,
                     ["percentiles: linear interpolation between nearest ranks; "
                      "rates in tok/s"]).render())
    if report.tokens:
        cols = [Column("Model"), Column("Requests", right=True), Column("Prompt", right=True),
                Column("Completion", right=True), Column("Total", right=True)]
        for row in report.tokens:
            for col, cell in zip(cols, (row.model, f"{row.requests:,}", f"{row.prompt_tokens:,}",
                                        f"{row.completion_tokens:,}", f"{row.total_tokens:,}"),
                                 strict=True):
                col.cells.append(cell)
        out.write(Layout("LLM tokens per model", cols).render())
    if report.usage:
        cols = [Column("Type"), Column("Model"), Column("Sessions", right=True),
                Column("Usage")]
        blocks: list[tuple[str | None, int]] = []
        for entry in report.usage:
            rest = [f"{k}={count(v)}" for k, v in entry.items()
                    if k not in ("type", "model", "sessions")] or ["-"]
            blocks.append((None, len(rest)))  # one usage figure per line: never cut
            for i, part in enumerate(rest):
                for col, cell in zip(cols, (str(entry["type"]).removesuffix("_usage"),
                                            str(entry["model"]), str(entry["sessions"]), part)
                                     if i == 0 else ("", "", "", part), strict=True):
                    col.cells.append(cell)
        out.write(Layout("Usage per model (last usage record of each session)", cols,
                         blocks).render())
    _cost_tables(report, out)
    if report.kinds:
        cols = [Column("Kind"), Column("Records", right=True)]
        for kind, n in report.kinds.items():
            cols[0].cells.append(kind)
            cols[1].cells.append(f"{n:,}")
        out.write(Layout("Records per kind", cols).render())


def budgets(results: Sequence[BudgetResult], err: IO[str]) -> None:
    """One line per budget on stderr: ok, BROKEN, or not checked (no values, allowed)."""
    for r in results:
        unit = r.budget.figure.unit
        where = "" if r.group == "all" else f" [{r.group}]"
        limit = fmt_value(r.budget.limit, unit)
        if r.unknown:
            state = f"BROKEN: unknown, no price for {', '.join(r.unknown)}"
        elif r.value is None:
            state = "BROKEN: no values" if r.broken else "not checked: no values (allowed)"
        else:
            state = ("BROKEN" if r.broken else "ok") + f": {fmt_value(r.value, unit)}"
        err.write(f"budget {r.budget.figure.name}.{r.budget.stat} <= {limit}{where}: {state}\n")


# -- compare ----------------------------------------------------------------------------------


def compare(cmp: Comparison, fmt: str, out: IO[str]) -> None:
    def stat(s: ComparedStat) -> dict[str, Any]:
        return {"a": s.a, "b": s.b, "diff": s.diff, "ratio": s.ratio,
                "ci95": list(s.ci) if s.ci else None, "verdict": s.verdict}

    if fmt == "json":
        out.write(_dumps({
            "by": cmp.by, "a": cmp.a, "b": cmp.b, "a_label": cmp.a_label,
            "b_label": cmp.b_label, "verdict": cmp.verdict,
            **({"agent_a": cmp.agents.get(cmp.a), "agent_b": cmp.agents.get(cmp.b)}
               if cmp.agents else {}),
            "figures": [
                {"figure": f.figure.name, "unit": f.figure.unit, "count_a": f.count_a,
                 "count_b": f.count_b, "p50": stat(f.p50), "p95": stat(f.p95),
                 "verdict": f.verdict}
                for f in cmp.figures
            ],
        }) + "\n")
        return
    cols = [Column("Figure"), Column("n A", right=True, drop=6), Column("n B", right=True,
                                                                        drop=6),
            Column("A p50", right=True), Column("B p50", right=True),
            Column("diff", right=True, drop=2), Column("ratio", right=True, drop=3),
            Column("A p95", right=True, drop=1), Column("B p95", right=True, drop=1),
            Column("diff", right=True, drop=4), Column("ratio", right=True, drop=5),
            Column("B vs A")]
    for f in cmp.figures:
        unit = f.figure.unit
        for col, cell in zip(cols, (
            f.figure.name, str(f.count_a), str(f.count_b),
            fmt_value(f.p50.a, unit), fmt_value(f.p50.b, unit),
            signed(f.p50.diff, unit), ratio(f.p50.ratio),
            fmt_value(f.p95.a, unit), fmt_value(f.p95.b, unit),
            signed(f.p95.diff, unit), ratio(f.p95.ratio),
            f.verdict if f.count_a and f.count_b else "-",
        ), strict=True):
            col.cells.append(cell)
    def side(key: str, label: str) -> str:
        parts = [p for p in (f"agent {cmp.agents[key]}" if key in cmp.agents else "", label) if p]
        return key + (f" ({', '.join(parts)})" if parts else "")

    a, b = f"A = {side(cmp.a, cmp.a_label)}", f"B = {side(cmp.b, cmp.b_label)}"
    out.write(Layout(f"{printable(a)}\n{printable(b)}", cols, notes=[
        "diff = B - A, ratio = B / A. B vs A: better or worse when the 95% bootstrap "
        "interval of the difference of p50 (and of p95) lies wholly beyond 5% of A, with 5 "
        "values a side (20 for p95); else unclear. Lower is better for times "
        "and costs, higher for tok/s.",
        f"Overall: {cmp.verdict}"]).render())
