"""The live view: the recipe's LLM table, STT/TTS/EOU tables, turn lines and the closing
summary of a running session, printed with Rich. Runs on the pipeline thread, never on the
agent's loop. (The store commands' tables are in :mod:`lkmetrics.render.tables`.)"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lkmetrics.analysis.stats import FIGURES
from lkmetrics.records import Record, model_label
from lkmetrics.render.units import count, fmt_value, number, recipe_seconds, seconds, timestamp

BAR_WIDTH = 40
STAGE_COLORS = {"eou": "magenta", "llm": "cyan", "tts": "green", "other": "grey50"}


def _s(value: Any) -> str:
    return f"[white]{recipe_seconds(value)}[/white]"


def _ts(value: Any) -> str:
    return timestamp(value)


def _check(flag: Any) -> str:
    return "✓" if flag else "✗"


def _report_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    table = Table(
        title=f"[bold blue]{title}[/bold blue]",
        box=box.ROUNDED,
        highlight=True,
        show_header=True,
        header_style="bold cyan",
    )
    table.add_column("Metric", style="bold green")
    table.add_column("Value", style="yellow")
    for name, value in rows:
        table.add_row(name, value)
    return table


def _request_rows(r: Record) -> list[tuple[str, str]]:
    """The rows every component table starts with: what made the request, and when."""
    return [
        ("Type", str(r.get("type"))),
        ("Label", str(r.get("label"))),
        ("Model", model_label(r) or "-"),
        ("Request ID", str(r.get("request_id"))),
        ("Timestamp", _ts(r.get("timestamp"))),
    ]


def llm_table(r: Record) -> Table:
    """The "LLM Metrics Report" of LiveKit's recipe, plus model and decode rate."""
    decode = r.get("decode_rate")
    return _report_table(
        "LLM Metrics Report",
        [
            *_request_rows(r),
            ("Duration", _s(r.get("duration"))),
            ("Time to First Token", _s(r.get("ttft"))),
            ("Cancelled", _check(r.get("cancelled"))),
            ("Completion Tokens", str(r.get("completion_tokens"))),
            ("Prompt Tokens", str(r.get("prompt_tokens"))),
            ("Total Tokens", str(r.get("total_tokens"))),
            ("Tokens/Second", f"{float(r.get('tokens_per_second') or 0):.2f}"),
            ("Decode Rate", f"{decode:.2f} tok/s" if isinstance(decode, float) else "-"),
        ],
    )


def stt_table(r: Record) -> Table:
    return _report_table(
        "STT Metrics Report",
        [
            *_request_rows(r),
            ("Duration", _s(r.get("duration"))),
            ("Audio Duration", _s(r.get("audio_duration"))),
            ("Streamed", _check(r.get("streamed"))),
        ],
    )


def tts_table(r: Record) -> Table:
    return _report_table(
        "TTS Metrics Report",
        [
            *_request_rows(r),
            ("Time to First Byte", _s(r.get("ttfb"))),
            ("Duration", _s(r.get("duration"))),
            ("Audio Duration", _s(r.get("audio_duration"))),
            ("Characters", str(r.get("characters_count"))),
            ("Cancelled", _check(r.get("cancelled"))),
            ("Streamed", _check(r.get("streamed"))),
        ],
    )


def eou_table(r: Record) -> Table:
    return _report_table(
        "EOU Metrics Report",
        [
            ("Type", str(r.get("type"))),
            ("Timestamp", _ts(r.get("timestamp"))),
            ("End of Utterance Delay", _s(r.get("end_of_utterance_delay"))),
            ("Transcription Delay", _s(r.get("transcription_delay"))),
            ("On User Turn Completed", _s(r.get("on_user_turn_completed_delay"))),
        ],
    )


def vad_line(r: Record) -> Text:
    return Text.from_markup(
        f"[dim]VAD {r.get('inference_count')} inferences, "
        f"{seconds(float(r.get('inference_duration_total') or 0))} total, "
        f"idle {seconds(float(r.get('idle_time') or 0))}[/dim]"
    )


def turn_breakdown(r: Record) -> list[tuple[str, float]]:
    """The stages of a turn's end-to-end latency: EOU, LLM first token, TTS first byte, rest."""
    stages: list[tuple[str, float]] = []
    for name, key in (("eou", "end_of_turn_delay"), ("llm", "llm_node_ttft"),
                      ("tts", "tts_node_ttfb")):
        v = number(r.get(key))
        if v is not None and v > 0:
            stages.append((name, v))
    e2e = number(r.get("e2e_latency"))
    if e2e is not None:
        rest = e2e - sum(v for _, v in stages)
        if rest > 0.0005:
            stages.append(("other", rest))
    return stages


def stacked_bar(stages: list[tuple[str, float]], width: int = BAR_WIDTH) -> Text:
    total = sum(v for _, v in stages)
    bar = Text()
    if total <= 0:
        return bar
    used = 0
    for i, (name, v) in enumerate(stages):
        n = width - used if i == len(stages) - 1 else round(v / total * width)
        n = max(n, 1)
        bar.append("█" * n, style=STAGE_COLORS.get(name, "white"))
        used += n
    return bar


def turn_line(r: Record) -> RenderableType:
    e2e = r.get("e2e_latency")
    head = Text.assemble(
        (f"Turn {r.get('turn')}", "bold"),
        "  e2e ",
        (seconds(e2e), "bold yellow"),
        "  ",
    )
    heard = r.get("heard_latency")
    if heard is not None:  # the simulated caller's own measure (simulate, bench voice)
        head.append("heard ")
        head.append(seconds(heard), style="bold cyan")
        head.append("  ")
    stages = turn_breakdown(r)
    head.append_text(stacked_bar(stages))
    head.append("  " + " · ".join(f"{n} {fmt_value(v, 's')}" for n, v in stages))
    lines: list[RenderableType] = [head]
    if r.get("user_text"):
        lines.append(Text.assemble(("  heard: ", "dim"), str(r["user_text"])))
    if r.get("agent_text"):
        lines.append(Text.assemble(("  said:  ", "dim"), str(r["agent_text"])))
    return Group(*lines)


def summary_renderable(r: Record) -> RenderableType:
    table = Table(title=f"[bold]Session summary[/bold] {r.get('session_id')}", box=box.ROUNDED,
                  header_style="bold cyan")
    table.add_column("Figure", style="bold green")
    for col in ("count", "p50", "p95", "max"):
        table.add_column(col, justify="right")
    figures = r.get("figures") or {}
    for f in FIGURES:
        stats = figures.get(f.name) or {}
        if not stats.get("count"):
            continue
        table.add_row(f.title, str(stats["count"]), fmt_value(stats.get("p50"), f.unit),
                      fmt_value(stats.get("p95"), f.unit), fmt_value(stats.get("max"), f.unit))
    tokens = r.get("tokens") or {}
    parts: list[RenderableType] = [table]
    parts.append(Text(
        f"Tokens: prompt {tokens.get('prompt', 0)}, completion {tokens.get('completion', 0)}, "
        f"total {tokens.get('total', 0)} · {r.get('turns', 0)} turns, "
        f"{r.get('records', 0)} records"
    ))
    usage = r.get("usage") or []
    if usage:
        ut = Table(title="Usage per model", box=box.SIMPLE, header_style="bold cyan")
        for col in ("type", "provider/model", "input", "output", "audio s", "chars"):
            ut.add_column(col)
        for u in usage:
            ut.add_row(
                str(u.get("type", "")).removesuffix("_usage"),
                f"{u.get('provider', '')}/{u.get('model', '')}",
                str(u.get("input_tokens", "")),
                str(u.get("output_tokens", "")),
                count(u["audio_duration"]) if "audio_duration" in u else "",
                str(u.get("characters_count", "")),
            )
        parts.append(ut)
    return Group(*parts)


def metric_line(r: Record) -> Text:
    """A compact line for the other metric kinds (realtime, eot, interruption, ...)."""
    skip = {"schema", "kind", "session_id", "seq", "time", "type", "label", "metadata"}
    parts = []
    for key, value in r.items():
        if key in skip or value is None or isinstance(value, dict | list):
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    model = model_label(r)
    head = f"{r.get('kind')}" + (f" ({model})" if model else "")
    return Text(f"{head}: " + " ".join(parts), style="dim")


class TableWriter:
    """A sink.Writer printing Rich tables (the ``table`` format)."""

    def __init__(self, console: Console, show: Iterable[str] = ()) -> None:
        self.console = console
        self.show = set(show)

    def renderable(self, r: Record) -> RenderableType | None:
        kind = r.get("kind")
        if kind == "llm":
            return llm_table(r)
        if kind == "stt":
            return stt_table(r)
        if kind == "tts":
            return tts_table(r)
        if kind == "eou":
            return eou_table(r)
        if kind == "vad":
            return vad_line(r) if "vad" in self.show else None
        if kind == "turn":
            return turn_line(r)
        if kind == "summary":
            return summary_renderable(r)
        if kind == "session":
            models = " · ".join(f"{k} {r.get(k) or 'none'}" for k in ("stt", "llm", "tts"))
            return Text.from_markup(f"[bold]lkmetrics[/bold] session {r.get('session_id')}: "
                                    f"{models}")
        if kind == "usage":
            return None
        return metric_line(r)

    def write(self, record: Record) -> None:
        item = self.renderable(record)
        if item is not None:
            self.console.print(item)

    def close(self) -> None:
        pass
