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
from lkmetrics.records import STAGE_NAMES, Record, model_identity, turn_stages, usage_identity
from lkmetrics.render.compact import clip, spark_line
from lkmetrics.render.compact import metric_line as compact_line
from lkmetrics.safety import printable, text
from lkmetrics.units import (
    count,
    fmt_value,
    number,
    recipe_seconds,
    seconds,
    timestamp,
)

BAR_WIDTH = 40
STAGE_COLORS = {"end_of_turn": "magenta", "llm_ttft": "cyan", "first_sentence": "blue",
                "tts_ttfb": "green", "playback": "yellow", "unexplained": "grey50"}


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
            ("Tokens/Second", f"{float(r.get('tokens_per_second') or 0):.2f}"),
            ("Decode Rate", f"{decode:.2f} tok/s" if isinstance(decode, float) else "-"),
        ],
    )


def stt_table(r: Record, session: Record | None = None) -> Table:
    return _report_table(
        "STT Metrics Report",
        [
            *_request_rows(r, session),
            ("Duration", _s(r.get("duration"))),
            ("Audio Duration", _s(r.get("audio_duration"))),
            ("Streamed", _check(r.get("streamed"))),
        ],
    )


def tts_table(r: Record, session: Record | None = None) -> Table:
    return _report_table(
        "TTS Metrics Report",
        [
            *_request_rows(r, session),
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
    return text(
        f"VAD {r.get('inference_count')} inferences, "
        f"{seconds(float(r.get('inference_duration_total') or 0))} total, "
        f"idle {seconds(float(r.get('idle_time') or 0))}", "dim"
    )


# the compact view's stage names (docs/live-view.md: "A turn, stage by stage")
SHORT_STAGE_NAMES = {"end_of_turn": "eot", "llm_ttft": "ttft", "first_sentence": "sentence",
                     "tts_ttfb": "ttfb", "playback": "play", "unexplained": "other"}


def turn_breakdown(r: Record) -> list[tuple[str, float]]:
    """The named stages of a turn's end-to-end latency, in order (see records.turn_stages):
    they add up to the e2e latency, less any overlap."""
    stages = r.get("stages")
    if not isinstance(stages, dict):  # a record from before stages: derive them
        stages = dict(turn_stages(r, number(r.get("heard_latency"))))
    out: list[tuple[str, float]] = []
    for name in STAGE_NAMES:
        v = number(stages.get(name))
        if v is not None and v > 0.0005:
            out.append((name, v))
    return out


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


def dynamics_note(r: Record) -> str:
    """What the simulated caller measured of the turn's dynamics, in words: ``interrupted,
    yielded in 240 ms``, ``no barge-in (reply ended at 1.2 s)``, ``1 backchannel, agent
    stopped and resumed``, ``answered half the line``, ``WER 0.17``; empty if nothing."""
    parts: list[str] = []
    ttl = number(r.get("time_to_yield"))
    if ttl is not None:
        parts.append(f"interrupted, yielded in {seconds(ttl)}")
    elif r.get("yielded") is False:
        parts.append("barged in, agent did not yield")
    elif isinstance(r.get("barge_in"), str):
        parts.append(str(r["barge_in"]))
    bc = number(r.get("backchannels"))
    if bc:
        n = int(bc)
        said = f"{n} backchannel{'s' if n != 1 else ''}"
        if number(r.get("false_interruptions")):
            said += ", agent stopped" + (" and resumed" if r.get("resumed") else "")
        parts.append(said)
    eot = number(r.get("eot_mispredictions"))
    if eot:
        parts.append("answered half the line" if eot == 1 else f"answered early {int(eot)}x")
    wer = number(r.get("stt_wer"))
    if wer is not None:
        parts.append(f"WER {wer:.2f}")
    return ", ".join(parts)


def tool_calls(r: Record) -> str:
    """The turn's function tool calls in order, e.g. ``lookup_weather 0.31 s · order 0.00 s
    (error)``; empty for a turn without tools."""
    found = r.get("tools")
    calls = found if isinstance(found, list) else []
    return " · ".join(
        f"{c.get('name')} {fmt_value(number(c.get('duration')), 's')}"
        + ("" if c.get("ok", True) else " (error)") for c in calls if isinstance(c, dict))


def turn_line(r: Record, width: int = 80, *, compact: bool = False) -> RenderableType:
    """The turn: e2e, a stacked bar of its stages (only with an e2e latency) that takes the
    room the line leaves, the stages, and what was heard and said (one line each when
    ``compact``)."""
    e2e = number(r.get("e2e_latency"))
    head = Text.assemble((f"Turn {r.get('turn')}", "bold"), "  e2e ",
                         (seconds(e2e), "bold yellow"))
    stages = turn_breakdown(r)
    names = SHORT_STAGE_NAMES if compact else {}
    parts = "  " + " · ".join(f"{names.get(n, n)} {fmt_value(v, 's', compact=compact)}"
                              for n, v in stages)
    found = r.get("stages")
    extra: dict[str, Any] = found if isinstance(found, dict) else {}
    overlap = number(extra.get("overlap"))
    if overlap is not None and overlap > 0.0005:
        parts += f" (overlap {fmt_value(overlap, 's', compact=compact)})"
    heard = number(r.get("heard_latency"))
    if heard is not None:  # what the simulated caller heard, on its own clock
        head.append(f"  heard {seconds(heard)}")
    dynamics = dynamics_note(r)
    if dynamics:
        head.append(f"  {dynamics}", style="magenta")
    lines: list[RenderableType] = [head]
    if e2e is not None and stages:
        room = width - head.cell_len - len(parts) - 2
        if room >= 10:  # bar and stages on the turn's line
            head.append("  ")
            head.append_text(stacked_bar(stages, min(BAR_WIDTH, room)))
            head.append(parts)
        else:  # the bar on a line of its own, the stages under it
            lines.append(Text("  ").append_text(stacked_bar(stages, min(BAR_WIDTH,
                                                                        width - 4))))
            lines.append(Text(parts))
    elif stages:
        head.append(parts)
    calls = tool_calls(r)
    if calls:
        lines.append(Text.assemble(("  tools: ", "dim"), printable(calls)))
    for key, label in (("user_text", "heard"), ("agent_text", "said ")):
        if r.get(key):
            said = clip(r[key], width - 9) if compact else str(r[key])
            lines.append(Text.assemble((f"  {label}: ", "dim"), printable(said)))
    return Group(*lines)


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
        table.add_row(f.title, str(stats["count"]), fmt_value(stats.get("p50"), f.unit),
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

        ut = Table(title="Usage per model", box=box.SIMPLE, header_style="bold cyan")
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

    ``view``: ``recipe`` (LiveKit's recipe tables, one per metric) or ``compact`` (one line
    per metric and a short block per turn).
    """

    def __init__(self, console: Console, show: Iterable[str] = (), *,
                 view: str = "recipe") -> None:
        self.console = console
        self.show = set(show)
        self.view = view
        self.session: Record | None = None
        self.e2e: list[float | None] = []  # per turn, for the summary's spark chart

    def renderable(self, r: Record) -> RenderableType | None:
        kind = r.get("kind")
        compact = self.view == "compact"
        if kind in ("llm", "stt", "tts", "eou") and compact:
            return compact_line(r, self.session)
        if kind == "llm":
            return llm_table(r, self.session)
        if kind == "stt":
            return stt_table(r, self.session)
        if kind == "tts":
            return tts_table(r, self.session)
        if kind == "eou":
            return eou_table(r)
        if kind == "vad":
            return vad_line(r) if "vad" in self.show else None
        if kind == "turn":
            self.e2e.append(number(r.get("e2e_latency")))
            return turn_line(r, self.console.width, compact=compact)
        if kind == "summary":
            return summary_renderable(r, self.e2e, self.session)
        if kind == "session":
            self.session = r
            models = " · ".join(
                f"{k} {model_identity({'kind': k}, r) or r.get(k) or 'none'}"
                for k in ("stt", "llm", "tts"))
            return Text.assemble(("lkmetrics", "bold"),
                                 printable(f" session {r.get('session_id')}: {models}"))
        if kind in ("usage", "error"):  # a failed request is one line on stderr already
            return None
        return metric_line(r)

    def write(self, record: Record) -> None:
        item = self.renderable(record)
        if item is not None:
            self.console.print(item)

    def close(self) -> None:
        pass
