"""The compact live view (``--view compact``): one line per metric record, a short block per
turn, and the spark chart of e2e over turns that closes a session's summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from lkmetrics.records import Record, model_identity
from lkmetrics.safety import printable
from lkmetrics.units import fmt_value, number

SPARKS = "▁▂▃▄▅▆▇█"

# kind -> (field, label, unit) of the figures its line shows
_FIGURES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "llm": (("ttft", "ttft", "s"), ("duration", "dur", "s"), ("decode_rate", "", "tok/s")),
    "tts": (("ttfb", "ttfb", "s"), ("duration", "dur", "s"), ("audio_duration", "audio", "s")),
    "stt": (("duration", "dur", "s"), ("audio_duration", "audio", "s")),
    "eou": (("end_of_utterance_delay", "delay", "s"), ("transcription_delay", "transcr", "s")),
}
_STYLES = {"llm": "cyan", "tts": "green", "stt": "yellow", "eou": "magenta"}


def metric_line(r: Record, session: Mapping[str, Any] | None) -> Text:
    """``llm  openai/gpt-4.1-mini  ttft 312ms  dur 1.20s  41.2/s  62 tok``."""
    kind = str(r.get("kind"))
    line = Text()
    line.append(f"{kind:<4}", style=f"bold {_STYLES.get(kind, 'white')}")
    model = model_identity(r, session) if kind != "eou" else None
    if model:
        line.append(f" {printable(model)}", style="dim")
    for key, label, unit in _FIGURES.get(kind, ()):
        v = number(r.get(key))
        if v is None:
            continue
        shown = fmt_value(v, unit, compact=True)
        line.append(f"  {label} {shown}" if label else f"  {shown}")
    if kind == "llm" and number(r.get("completion_tokens")) is not None:
        line.append(f"  {r.get('prompt_tokens')}→{r.get('completion_tokens')} tok")
    if kind == "tts" and r.get("characters_count") is not None:
        line.append(f"  {r.get('characters_count')} chars")
    if r.get("cancelled"):
        line.append("  cancelled", style="red")
    return line


def spark(values: Sequence[float | None]) -> str:
    """One character per value, its height scaled between the smallest and largest; a gap
    (space) for a missing value: ``▁▃█ ▂``."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            level = 0 if span <= 0 else round((v - low) / span * (len(SPARKS) - 1))
            out.append(SPARKS[level])
    return "".join(out)


def spark_line(e2e: Sequence[float | None]) -> Text | None:
    """``e2e over turns ▁▃█▂  (min 812ms, max 2.10s)``, or None without a value."""
    chart = spark(e2e)
    present = [v for v in e2e if v is not None]
    if not present:
        return None
    return Text.assemble(
        ("e2e over turns ", "bold"), (chart, "yellow"),
        f"  (min {fmt_value(min(present), 's', compact=True)}, "
        f"max {fmt_value(max(present), 's', compact=True)})",
    )


def clip(text: object, width: int) -> str:
    """A turn's text on one line of at most ``width`` characters (the text, not a figure)."""
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: max(1, width - 1)] + "…"
