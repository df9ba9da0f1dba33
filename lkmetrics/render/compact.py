"""The compact live view (``--view compact``): one line per metric record, a short block per
turn, and the spark chart of e2e over turns that closes a session's summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from lkmetrics.figures import FIGURES, FIGURES_BY_NAME
from lkmetrics.records import Record, model_identity
from lkmetrics.safety import printable
from lkmetrics.units import fmt_value, number

SPARKS = "▁▂▃▄▅▆▇█"

# the record fields a line shows beside its kind's figures (a size, not a reported figure)
_AUDIO = ("audio_duration", "audio", "s")


def _shown(kind: str) -> tuple[tuple[str, str, str], ...]:
    """(field, name, unit) of what a line of ``kind`` shows: the kind's figures by their
    registry names, then the audio it carried (STT, TTS)."""
    figures = tuple((f.field, f.shown, f.unit) for f in FIGURES
                    if f.kind == kind and "." not in f.field)
    return figures + ((_AUDIO,) if kind in ("stt", "tts") else ())


_STYLES = {"llm": "cyan", "tts": "green", "stt": "yellow", "eou": "magenta"}


def metric_line(r: Record, session: Mapping[str, Any] | None, width: int = 0) -> Text:
    """``llm  openai/gpt-4.1-mini  llm ttft 312 ms  llm duration 1.20 s  decode rate 41.2 tok/s
    62→20 tok``, broken between figures onto indented lines when wider than ``width`` (0:
    never)."""
    kind = str(r.get("kind"))
    head = Text(f"{kind:<4}", style=f"bold {_STYLES.get(kind, 'white')}")
    model = model_identity(r, session) if kind != "eou" else None
    if model:
        head.append(f" {printable(model)}", style="dim")
    items = [head]
    for key, label, unit in _shown(kind):
        v = number(r.get(key))
        if v is None:
            continue
        items.append(Text(f"{label} {fmt_value(v, unit)}"))
    if kind == "llm" and number(r.get("completion_tokens")) is not None:
        items.append(Text(f"{r.get('prompt_tokens')}→{r.get('completion_tokens')} tok"))
    if kind == "tts" and r.get("characters_count") is not None:
        items.append(Text(f"{r.get('characters_count')} chars"))
    requests = number(r.get("requests"))
    if kind == "tts" and requests is not None:
        items.append(Text(f"{int(requests)} req"))  # short: the line fits 80 columns
    if r.get("cancelled"):
        items.append(Text("cancelled", style="red"))
    return Text("\n").join(fold(items, width or 10**6, indent=5, sep="  ", first_indent=0))


def fold(items: Sequence[Text], width: int, indent: int = 2, sep: str = " · ",
         first_indent: int | None = None) -> list[Text]:
    """``items`` joined by ``sep`` on lines of at most ``width`` columns, broken between
    items (never inside one); lines indented by ``indent`` (the first by ``first_indent``,
    default the same)."""
    lines: list[Text] = []
    start = indent if first_indent is None else first_indent
    line = Text(" " * start)
    for item in items:
        fresh = line.cell_len == start
        if not fresh and line.cell_len + len(sep) + item.cell_len > width:
            lines.append(line)
            start = indent
            line, fresh = Text(" " * start), True
        if not fresh:
            line.append(sep)
        line.append_text(item)
    if line.cell_len > start:
        lines.append(line)
    return lines


def tts_reply(records: Sequence[Record]) -> Record:
    """One reply's TTS requests (one per sentence) as one record for display: the first
    request's ttfb (what delays the reply), durations, audio and characters summed, how many
    requests. For the live view only: the records themselves are stored as they came."""
    first = records[0]

    def total(key: str) -> float | None:
        values = [number(r.get(key)) for r in records]
        present = [v for v in values if v is not None]
        return sum(present) if present else None

    return {**first, "duration": total("duration"), "audio_duration": total("audio_duration"),
            "characters_count": (None if (chars := total("characters_count")) is None
                                 else int(chars)),
            "cancelled": any(r.get("cancelled") for r in records), "requests": len(records)}


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
    """``e2e over turns ▁▃█▂  (min 812 ms, max 2.10 s)``, or None without a value."""
    chart = spark(e2e)
    present = [v for v in e2e if v is not None]
    if not present:
        return None
    return Text.assemble(
        (f"{FIGURES_BY_NAME['e2e'].shown} over turns ", "bold"), (chart, "yellow"),
        f"  (min {fmt_value(min(present), 's')}, "
        f"max {fmt_value(max(present), 's')})",
    )


def clip(text: object, width: int, lines: int = 1) -> str:
    """A turn's text (the text, not a figure) on at most ``lines`` lines of at most ``width``
    characters, broken between words, cut with ``…`` when longer."""
    s = " ".join(str(text).split())
    if lines <= 1 or len(s) <= width:
        return s if len(s) <= width else s[: max(1, width - 1)] + "…"
    import textwrap

    wrapped = textwrap.wrap(s, width, break_long_words=True, break_on_hyphens=False)
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], clip(" ".join(wrapped[lines - 1:]), width)]
    return "\n".join(wrapped)
