"""``bench voice``'s output: the ranked table and load curve, or one JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, Any

from lkmetrics.analysis.budgets import BudgetResult
from lkmetrics.bench.voice.core import (
    TURN_FIGURES,
    VoiceRun,
    agent_of,
    document,
    knee,
    passed,
    ranked,
)
from lkmetrics.figures import BENCH_VOICE_FIGURES, FIGURES_BY_NAME, Figure
from lkmetrics.units import fmt_value

STAGES = ("eou_delay", "transcription_delay", "llm_ttft", "tts_ttfb")  # the table's p50 columns


def write_json(bench_id: str, runs: Sequence[VoiceRun], checked: Sequence[BudgetResult],
               out: IO[str], *, stopped_by: str | None = None) -> None:
    """Exactly one JSON document, on one line; ``stopped_by``: the signal that stopped the
    bench (the document then holds the runs that finished before it)."""
    doc = document(bench_id, runs, checked)
    if stopped_by is not None:
        doc["stopped_by"] = stopped_by
    out.write(json.dumps(doc, separators=(",", ":")) + "\n")
    out.flush()


def write_table(bench_id: str, runs: Sequence[VoiceRun], checked: Sequence[BudgetResult],
                out: IO[str], *, recorded: bool = True) -> None:
    """One row per combination and concurrency, fastest combination first; then, with more
    than one concurrency, the highest one each combination passed at."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from lkmetrics.safety import console as safe_console
    from lkmetrics.safety import text

    console = safe_console(file=out)
    order = ranked(runs)
    console.print(Text.assemble(("bench voice", "bold"), f" {bench_id}: combinations ranked by "
                                "e2e p50 (STT | LLM | TTS)"), soft_wrap=True)
    agent = agent_of(runs)
    if agent["agent"] is not None:
        console.print(text(f"  agent: {agent['agent']} ({agent['agent_target']})"),
                      soft_wrap=True)
    for rank, combination in enumerate(order, 1):
        console.print(text(f"  {rank}  {combination}"), soft_wrap=True)
    # tables that each fit in 80 columns, row for row: the latency and what failed, where
    # the time went, and (when measured) how the conversation went
    shown = conversation_columns(runs)
    swept = any(r.sweep for r in runs)
    rows = sorted(runs, key=lambda r: (order.index(r.combination), r.concurrency))
    e2e_name, heard_name = (FIGURES_BY_NAME[TURN_FIGURES[k][1]].shown for k in ("e2e", "heard"))

    def table(columns: Sequence[str], cells: Any, caption: str | None = None) -> Any:
        out = Table(box=box.SIMPLE_HEAVY, caption=caption, caption_justify="left")
        for name in ("#", "callers", *(("value",) if swept else ()), *columns):
            out.add_column(name, justify="right")
        for run in rows:
            out.add_row(str(order.index(run.combination) + 1), str(run.concurrency),
                        *((f"{run.sweep[1]:g} s" if run.sweep else "",) if swept else ()),
                        *cells(run))
        return out

    def latency_cells(run: VoiceRun) -> list[Any]:
        e2e, heard = run.stats("e2e"), run.stats("heard")
        errors = (Text(f"{run.errors}/{run.planned}", style="red") if run.errors
                  else Text(f"0/{run.planned}"))
        mark = "" if not checked or passed(run, checked) else " ✗"
        return [fmt_value(e2e["p50"], "s"), fmt_value(e2e["p95"], "s"),
                fmt_value(heard["p50"], "s"), fmt_value(heard["p95"], "s"),
                errors.append(mark, style="red")]

    console.print(table((f"{e2e_name} p50", f"{e2e_name} p95", f"{heard_name} p50",
                         f"{heard_name} p95", "failed"), latency_cells))
    console.print(table([FIGURES_BY_NAME[TURN_FIGURES[k][1]].shown for k in STAGES],
                        lambda run: [fmt_value(run.stats(n)["p50"], "s") for n in STAGES],
                        caption="stages: p50 of LiveKit's per-turn report"))
    if shown:
        console.print(table([f.bench_header for f in shown],
                            lambda run: [conversation_cell(run, f) for f in shown],
                            caption="the conversation, as the callers heard it"))
    if swept:
        write_sweep(runs, console)
    for run in runs:
        if run.first_error:
            console.print(Text.assemble(text(f"  {run.label}", "red"),
                                        text(f": first error: {run.first_error}")),
                          soft_wrap=True)
    levels = sorted({r.concurrency for r in runs})
    if len(levels) > 1:
        what = "every budget held" if checked else "no turn failed"
        for combination, best in knee(runs, checked).items():
            upto = (f"up to {best} callers" if best is not None
                    else f"not even at {levels[0]}")
            console.print(text(f"  {combination}: {what} {upto} (of "
                               f"{', '.join(map(str, levels))})"), soft_wrap=True)
    if recorded:
        console.print(f"  sessions recorded under bench id {bench_id}: lkmetrics report "
                      f"--bench {bench_id} --by session", soft_wrap=True)


def conversation_columns(runs: Sequence[VoiceRun]) -> list[Figure]:
    """The registry's bench voice conversation figures that some run measured."""
    return [f for f in BENCH_VOICE_FIGURES if any(r.figure(f)["count"] for r in runs)]


def conversation_cell(run: VoiceRun, figure: Figure) -> str:
    """A run's value of a conversation figure, in the stat its column shows."""
    assert figure.bench is not None
    return fmt_value(run.figure(figure)[figure.bench], figure.unit)


def write_sweep(runs: Sequence[VoiceRun], console: Any) -> None:
    """--sweep: per value, e2e latency against the premature end-of-turn rate."""
    from rich import box
    from rich.table import Table

    from lkmetrics.bench.voice.sweep import rows

    swept = rows(runs)
    e2e, eot = FIGURES_BY_NAME["e2e"].shown, FIGURES_BY_NAME["eot_mispredictions"].shown
    table = Table(box=box.SIMPLE_HEAVY, title=f"sweep {swept[0]['name']}: {e2e} against "
                  f"{eot}", title_justify="left",
                  caption=f"per line: {eot} per line answered (needs --pause-mid or a "
                  "scenario's pause_mid)", caption_justify="left")
    several = len({(r["stt"], r["llm"], r["tts"], r["concurrency"]) for r in swept}) > 1
    for name in ((("stack @ callers",) if several else ()) + (
            "value", f"{e2e} p50", f"{e2e} p95", eot, "per line", "answered")):
        table.add_column(name, justify="left" if name.startswith("stack") else "right")
    for row in swept:
        rate = row["eot_rate"]
        table.add_row(
            *((f"{row['stt']} | {row['llm']} | {row['tts']} @ {row['concurrency']}",)
              if several else ()),
            f"{row['value']:g} s", fmt_value(row["e2e_p50"], "s"),
            fmt_value(row["e2e_p95"], "s"),
            "-" if row["eot_mispredictions"] is None else str(row["eot_mispredictions"]),
            "-" if rate is None else f"{rate:.2f}",
            f"{row['turns_answered']}/{row['turns']}")
    console.print(table)
