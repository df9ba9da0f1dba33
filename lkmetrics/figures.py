"""The figure registry: every reported figure declared once (name, record field, unit, label,
store column, fleet series, budget direction), how it is read from a record, and percentiles.

Adding a figure is one entry in ``FIGURES``; stats, store columns, fleet series, bench tables,
budgets, plots and the live views all read it from here.

Percentile definition, used everywhere in lkmetrics: linear interpolation between the two
nearest ranks of the sorted values (``numpy.percentile``'s default, Excel's PERCENTILE.INC):
for n sorted values and percentile p, the rank is ``(n - 1) * p / 100``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lkmetrics.records import Record


@dataclass(frozen=True)
class Figure:
    """A reported figure: which field of which record kind, its unit, and where it is kept.

    ``name`` is the figure everywhere a table or a budget names it (``report``, ``compare``,
    ``--fail-over``, the live summary); ``short`` is the same figure in a line or a narrow
    column (the compact view, a turn's stage legend, bench voice's table, plot legends);
    ``title`` says what it is in words (JSON, CSV, chart titles).
    """

    name: str
    title: str
    kind: str
    field: str  # a key of the record, or "outer.inner" for one inside a dict field
    unit: str  # "s", "tok/s", "USD", "count" (per turn) or "ratio" (a word error rate)
    column: str | None = None  # the store's indexed column holding it
    series: str | None = None  # the fleet series (lkmetrics.fleet.series.SERIES key) it feeds
    optional: bool = False  # only some runs measure it (simulate --barge-in): shown where they did
    short: str = ""  # its name in a line or a narrow column (default: ``name``)
    stage: str | None = None  # the turn stage (records.STAGE_NAMES) that is this figure
    # bench voice's column beside a stack's latency: the stat it shows (a describe() stat, or
    # "sum" for a count's total); None: not a bench voice column
    bench: str | None = None

    @property
    def higher_is_better(self) -> bool:
        """A rate (tok/s) is better higher; a time or a cost is better lower."""
        return self.unit == "tok/s"

    @property
    def shown(self) -> str:
        """The figure's name in a line or a narrow column."""
        return self.short or self.name

    @property
    def bench_header(self) -> str:
        """Its bench voice column's header: its short name and the stat (a total: the name)."""
        return self.shown if self.bench in (None, "sum") else f"{self.shown} {self.bench}"


FIGURES: tuple[Figure, ...] = (
    Figure("llm.ttft", "LLM time to first token", "llm", "ttft", "s", "llm_ttft", "llm.ttft",
           short="llm ttft", stage="llm_ttft"),
    Figure("llm.duration", "LLM duration", "llm", "duration", "s", "llm_duration",
           "llm.duration", short="llm duration"),
    Figure("llm.decode_rate", "LLM decode rate", "llm", "decode_rate", "tok/s",
           "llm_decode_rate", short="decode rate"),
    Figure("tts.ttfb", "TTS time to first byte", "tts", "ttfb", "s", "tts_ttfb", "tts.ttfb",
           short="tts ttfb", stage="tts_ttfb"),
    Figure("stt.duration", "STT duration", "stt", "duration", "s", "stt_duration",
           "stt.duration", short="stt duration"),
    Figure("eou.delay", "End-of-utterance delay", "eou", "end_of_utterance_delay", "s",
           "eou_delay", "eou.delay", short="eou delay", stage="end_of_turn"),
    Figure("eou.transcription_delay", "Transcription delay", "eou", "transcription_delay", "s",
           "eou_transcription_delay", "eou.transcription_delay", short="transcription"),
    Figure("e2e", "Turn end-to-end latency", "turn", "e2e_latency", "s", "e2e", "turn.e2e"),
    Figure("turn.first_sentence", "First sentence (LLM first token -> first sentence)", "turn",
           "stages.first_sentence", "s", "turn_first_sentence", short="first sentence",
           stage="first_sentence"),
    Figure("turn.unexplained", "Unexplained turn latency", "turn", "stages.unexplained", "s",
           "turn_unexplained", short="unexplained", stage="unexplained"),
    Figure("heard", "Heard latency (the caller's own clock)", "turn", "heard_latency", "s",
           "heard", "turn.heard"),
    Figure("tool.duration", "Function tool duration", "tool", "duration", "s",
           "tool_duration", "tool.duration", short="tool duration"),
    # the simulated caller's conversation dynamics (simulate --barge-in, --backchannel,
    # --pause-mid; stt.wer wherever it knows the words it said), on its own clock
    Figure("turn.time_to_yield", "Time to yield (caller's barge-in -> agent quiet)", "turn",
           "time_to_yield", "s", "time_to_yield", "turn.time_to_yield", optional=True,
           short="time to yield", bench="p50"),
    Figure("talk_over", "Talk-over (caller and agent at once)", "turn", "talk_over", "s",
           "talk_over", "turn.talk_over", optional=True, short="talk-over"),
    Figure("backchannels", "Backchannels said by the caller", "turn", "backchannels", "count",
           "backchannels", "turn.backchannels", optional=True),
    Figure("false_interruptions", "False interruptions (agent stopped for a backchannel)",
           "turn", "false_interruptions", "count", "false_interruptions",
           "turn.false_interruptions", optional=True, short="false interruptions",
           bench="sum"),
    Figure("eot_mispredictions", "Premature ends of turn (half a line answered)", "turn",
           "eot_mispredictions", "count", "eot_mispredictions", "turn.eot_mispredictions",
           optional=True, short="premature ends of turn", bench="sum"),
    Figure("livekit.false_interruptions", "LiveKit's agent_false_interruption events", "turn",
           "livekit_false_interruptions", "count", "livekit_false_interruptions",
           optional=True, short="livekit false interruptions"),
    Figure("stt.wer", "STT word error rate (caller's words)", "turn", "stt_wer", "ratio",
           "stt_wer", "stt.wer", optional=True, short="stt wer", bench="mean"),
)

FIGURES_BY_NAME = {f.name: f for f in FIGURES}
# bench voice's conversation columns, in the registry's order
BENCH_VOICE_FIGURES: tuple[Figure, ...] = tuple(f for f in FIGURES if f.bench is not None)
# premature ends of turn: bench voice --sweep's rate (per line answered) against latency
PREMATURE_EOT = FIGURES_BY_NAME["eot_mispredictions"]

# bench llm's figures of each request, as the client measures them with the definitions of
# vLLM's benchmark_serving and NVIDIA AIPerf (docs/bench.md); a name is its key in bench llm's
# JSON document. (LiveKit's own LLM figures of the same requests are llm.ttft and the others
# above, which bench llm's budgets check.)
REQUEST_FIGURES: tuple[Figure, ...] = (
    Figure("ttft", "Time to first token (request sent -> first content chunk)", "request",
           "ttft", "s", short="request ttft"),
    Figure("tpot", "Time per output token after the first", "request", "tpot", "s"),
    Figure("itl", "Inter-token latency (the gaps between content chunks)", "request", "itl",
           "s"),
    Figure("latency", "Request latency (request sent -> end of its stream)", "request",
           "latency", "s", short="request latency"),
)

# kinds that only some agents record (tool: --agent agents with function tools): their figures
# are shown only where they were measured
OPTIONAL_KINDS = frozenset({"tool"})


def shown_only_if_measured(figure: Figure) -> bool:
    """Whether a report leaves the figure out where it has no values."""
    return figure.optional or figure.kind in OPTIONAL_KINDS

# costs are computed from usage records and prices (lkmetrics.cost); a turn record carries the
# cost it had when it was recorded (``cost.total``), which the store keeps in a column
COST_FIGURES: tuple[Figure, ...] = (
    Figure("cost.turn", "Cost per turn", "turn", "cost.total", "USD", "cost"),
    Figure("cost.session", "Cost per session", "session", "cost", "USD"),
)
COST_MODEL = Figure("cost.model", "Model cost per session", "usage", "cost", "USD")
COST_FIGURES_BY_NAME = {f.name: f for f in COST_FIGURES}


# a turn's stages (records.STAGE_NAMES, plus the overlap) by the name a line shows: the
# figure's short name where the stage is a figure, else the stage's own
STAGE_LABELS: dict[str, str] = {
    "tools": "tools", "playback": "playback", "overlap": "overlap",
    **{f.stage: f.shown for f in FIGURES if f.stage},
}


def figure_value(figure: Figure, record: Record) -> float | None:
    """The figure's value in a record, or None when the record does not carry it.

    Negative values are LiveKit's "not measured" marker (ttft/ttfb of -1) and are skipped.
    """
    if record.get("kind") != figure.kind:
        return None
    if "." in figure.field:
        outer, inner = figure.field.split(".", 1)
        nested = record.get(outer)
        value = nested.get(inner) if isinstance(nested, dict) else None
    else:
        value = record.get(figure.field)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if value < 0 or math.isnan(value):
        return None
    if figure.kind == "stt" and value == 0 and record.get("streamed"):
        return None  # a streaming STT reports no request duration
    return float(value)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) of already sorted values, by linear interpolation."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    rank = (len(sorted_values) - 1) * p / 100
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return float(sorted_values[lo])
    frac = rank - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def percentile_rows(rows: Any, p: float | Sequence[float]) -> Any:
    """:func:`percentile` of each row of a 2-D numpy array at once (compare's bootstrap
    resamples), or of a 1-D array: the same definition, numpy's ``linear`` method. With a
    sequence of percentiles, one result per percentile."""
    import numpy as np

    return np.percentile(rows, p, axis=-1, method="linear")


PERCENTILE_HELP = (
    "Percentiles interpolate linearly between the two nearest ranks of the sorted values "
    "(rank = (n - 1) * p / 100; numpy.percentile's default, Excel's PERCENTILE.INC)."
)

# the stats a budget can limit and a bench reports (count aside, those of describe)
SPREAD_STATS = ("mean", "p50", "p90", "p95", "p99", "max")
STAT_NAMES = ("count", "mean", "p50", "p90", "p95", "p99", "max")


def describe(values: Iterable[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p90, p95, p99 and max of the values (None stats when empty)."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p95": None, "p99": None,
                "max": None}
    return {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
    }


# the figures the store keeps in a column: every reported figure and each turn's recorded cost
STORED_FIGURES: tuple[Figure, ...] = (*FIGURES, COST_FIGURES_BY_NAME["cost.turn"])
# figure name -> the numeric column holding it
FIGURE_COLUMNS: dict[str, str] = {f.name: f.column for f in STORED_FIGURES if f.column}
