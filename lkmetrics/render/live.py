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

from lkmetrics.figures import FIGURES
from lkmetrics.records import Record, model_identity, usage_identity
from lkmetrics.render.compact import fold, spark_line, tts_reply
from lkmetrics.render.compact import metric_line as compact_line
from lkmetrics.render.turns import BarScale, turn_line
from lkmetrics.safety import printable, text
from lkmetrics.units import (
    count,
    fmt_value,
    number,
    recipe_seconds,
    seconds,
    timestamp,
)


def _s(value: Any) -> Text:
    return Text(recipe_seconds(value), style="white")


def _ts(value: Any) -> str:
    return timestamp(value)


def _check(flag: Any) -> str:
    return "✓" if flag else "✗"


def _report_table(title: str, rows: Iterable[tuple[str, str | Text]]) -> Table:
    table = Table(
        title=Text(title, style="bold blue"),
        box=box.ROUNDED,
        highlight=True,
        show_header=True,
        header_style="bold cyan",
    )
    table.add_column("Metric", style="bold green")
    table.add_column("Value", style="yellow")
    for name, value in rows:
        table.add_row(name, value if isinstance(value, Text) else text(value))
    return table


def _request_rows(r: Record, session: Record | None = None) -> list[tuple[str, str | Text]]:
    """The rows every component table starts with: what made the request, and when."""
    return [
        ("Type", str(r.get("type"))),
        ("Label", str(r.get("label"))),
        ("Model", model_identity(r, session) or "-"),
        ("Request ID", str(r.get("request_id"))),
        ("Timestamp", _ts(r.get("timestamp"))),
    ]


def llm_table(r: Record, session: Record | None = None) -> Table:
    """The "LLM Metrics Report" of LiveKit's recipe, plus model and decode rate."""
    decode = r.get("decode_rate")
    return _report_table(
        "LLM Metrics Report",
        [
            *_request_rows(r, session),
            ("Duration", _s(r.get("duration"))),
            ("Time to First Token", _s(r.get("ttft"))),
            ("Cancelled", _check(r.get("cancelled"))),
            ("Completion Tokens", str(r.get("completion_tokens"))),
            ("Prompt Tokens", str(r.get("prompt_tokens"))),
            ("Total Tokens", str(r.get("total_tokens"))),
            ("Tokens/Second", fmt_value(float(r.get("tokens_per_second") or 0), "tok/s")),
            ("Decode Rate", fmt_value(number(decode), "tok/s")),
        ],
    )


def vad_line(r: Record) -> Text:
    return text(
        f"VAD {r.get('inference_count')} inferences, "
        f"{seconds(float(r.get('inference_duration_total') or 0))} total, "
        f"idle {seconds(float(r.get('idle_time') or 0))}", "dim"
    )


def summary_renderable(r: Record, e2e: list[float | None] | None = None,
                       session: Record | None = None) -> RenderableType:
    table = Table(title=Text.assemble(("Session summary", "bold"),
                                      f" {printable(r.get('session_id'))}"), box=box.ROUNDED,
                  header_style="bold cyan")
    table.add_column("Figure", style="bold green")
    for col in ("count", "p50", "p95", "max"):
        table.add_column(col, justify="right")
    figures = r.get("figures") or {}
    for f in FIGURES:
        stats = figures.get(f.name) or {}
        if not stats.get("count"):
            continue
        table.add_row(f.name, str(stats["count"]), fmt_value(stats.get("p50"), f.unit),
                      fmt_value(stats.get("p95"), f.unit), fmt_value(stats.get("max"), f.unit))
    tokens = r.get("tokens") or {}
    parts: list[RenderableType] = [table]
    chart = spark_line(e2e or [])
    if chart is not None:
        parts.append(chart)
    parts.append(Text(
        f"Tokens: prompt {tokens.get('prompt', 0)}, completion {tokens.get('completion', 0)}, "
        f"total {tokens.get('total', 0)} · {r.get('turns', 0)} turns, "
        f"{r.get('records', 0)} records"
    ))
    usage = r.get("usage") or []
    if usage:
        from lkmetrics.store.rows import session_models

        ut = Table(title="Usage per model", box=box.SIMPLE, header_style="bold cyan",
                   show_edge=False)
        for col in ("type", "provider/model", "input", "output", "audio s", "chars"):
            ut.add_column(col)
        for u in usage:
            ut.add_row(
                str(u.get("type", "")).removesuffix("_usage"),
                usage_identity(u, session_models(session) if session else None),
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
    model = model_identity(r)
    head = f"{r.get('kind')}" + (f" ({model})" if model else "")
    return text(f"{head}: " + " ".join(parts), "dim")


class TableWriter:
    """A pipeline Writer printing the live view (the ``table`` format).

    ``view``: ``recipe`` (LiveKit's recipe table for each LLM response; one line for each STT
    and EOU metric and for each reply's TTS requests) or ``compact`` (one line per LLM
    response too). A reply's TTS requests (one per sentence) are held until the reply ends
    and shown as one line. Every turn's bar is drawn on the session's one time scale, set by
    its first turn with an e2e latency and shown once.
    """

    def __init__(self, console: Console, show: Iterable[str] = (), *,
                 view: str = "recipe") -> None:
        self.console = console
        self.show = set(show)
        self.view = view
        self.session: Record | None = None
        self.e2e: list[float | None] = []  # per turn, for the summary's spark chart
        self.scale: BarScale | None = None
        self.tts: list[Record] = []  # the TTS requests of the reply being spoken

    def _turn(self, r: Record) -> RenderableType:
        e2e = number(r.get("e2e_latency"))
        self.e2e.append(e2e)
        compact = self.view == "compact"
        if self.scale is not None or e2e is None or e2e <= 0:
            return turn_line(r, self.console.width, compact=compact, scale=self.scale)
        self.scale = BarScale.for_first(e2e)
        return Group(self.scale.caption(),
                     turn_line(r, self.console.width, compact=compact, scale=self.scale))

    def renderable(self, r: Record) -> RenderableType | None:
        kind = r.get("kind")
        if kind in ("stt", "eou", "tts") or (kind == "llm" and self.view == "compact"):
            return compact_line(r, self.session, self.console.width)
        if kind == "llm":
            return llm_table(r, self.session)
        if kind == "vad":
            return vad_line(r) if "vad" in self.show else None
        if kind == "turn":
            return self._turn(r)
        if kind == "summary":
            return summary_renderable(r, self.e2e, self.session)
        if kind == "session":
            self.session = r
            self.scale = None
            head = Text.assemble(("session", "bold"), printable(f" {r.get('session_id')}"))
            models = [text(f"{k} {model_identity({'kind': k}, r) or r.get(k) or 'none'}")
                      for k in ("stt", "llm", "tts")]
            return Text("\n").join(fold([head, *models], self.console.width, indent=2,
                                         first_indent=0))
        if kind in ("usage", "error"):  # a failed request is one line on stderr already
            return None
        return metric_line(r)

    def _flush_tts(self) -> None:
        if self.tts:
            self.console.print(compact_line(tts_reply(self.tts), self.session,
                                            self.console.width))
            self.tts = []

    def write(self, record: Record) -> None:
        kind = record.get("kind")
        if kind == "tts":  # held until its reply ends: one line per reply, not per sentence
            if self.tts and self.tts[-1].get("speech_id") != record.get("speech_id"):
                self._flush_tts()
            self.tts.append(record)
            return
        if kind not in ("llm", "vad", "usage"):  # the reply's TTS lines before what follows
            self._flush_tts()
        item = self.renderable(record)
        if item is not None:
            self.console.print(item)

    def close(self) -> None:
        self._flush_tts()
