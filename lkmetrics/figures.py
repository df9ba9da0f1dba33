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

from lkmetrics.records import Record


@dataclass(frozen=True)
class Figure:
    """A reported figure: which field of which record kind, its unit, and where it is kept."""

    name: str
    title: str
    kind: str
    field: str  # a key of the record, or "outer.inner" for one inside a dict field
    unit: str  # "s", "tok/s", "USD", "count" (per turn) or "ratio" (a word error rate)
    column: str | None = None  # the store's indexed column holding it
    series: str | None = None  # the fleet series (lkmetrics.fleet.series.SERIES key) it feeds
    optional: bool = False  # only some runs measure it (simulate --barge-in): shown where they did
    # bench voice's column beside a stack's latency: (its header, the stat it shows: a
    # describe() stat, or "sum" for a count's total); None: not a bench voice column
    bench: tuple[str, str] | None = None

    @property
    def higher_is_better(self) -> bool:
        """A rate (tok/s) is better higher; a time or a cost is better lower."""
        return self.unit == "tok/s"


FIGURES: tuple[Figure, ...] = (
    Figure("llm.ttft", "LLM time to first token", "llm", "ttft", "s", "llm_ttft", "llm.ttft"),
    Figure("llm.duration", "LLM duration", "llm", "duration", "s", "llm_duration",
           "llm.duration"),
    Figure("llm.decode_rate", "LLM decode rate", "llm", "decode_rate", "tok/s",
           "llm_decode_rate"),
    Figure("tts.ttfb", "TTS time to first byte", "tts", "ttfb", "s", "tts_ttfb", "tts.ttfb"),
    Figure("stt.duration", "STT duration", "stt", "duration", "s", "stt_duration",
           "stt.duration"),
    Figure("eou.delay", "End-of-utterance delay", "eou", "end_of_utterance_delay", "s",
           "eou_delay", "eou.delay"),
    Figure("eou.transcription_delay", "Transcription delay", "eou", "transcription_delay", "s",
           "eou_transcription_delay", "eou.transcription_delay"),
    Figure("e2e", "Turn end-to-end latency", "turn", "e2e_latency", "s", "e2e", "turn.e2e"),
    Figure("turn.first_sentence", "Wait for the first sentence", "turn",
           "stages.first_sentence", "s", "turn_first_sentence"),
    Figure("turn.unexplained", "Unexplained turn latency", "turn", "stages.unexplained", "s",
           "turn_unexplained"),
    Figure("heard", "Heard latency (the caller's own clock)", "turn", "heard_latency", "s",
           "heard"),
    Figure("tool.duration", "Function tool duration", "tool", "duration", "s",
           "tool_duration", "tool.duration"),
    # the simulated caller's conversation dynamics (simulate --barge-in, --backchannel,
    # --pause-mid; stt.wer wherever it knows the words it said), on its own clock
    Figure("turn.time_to_yield", "Time to yield (caller's barge-in -> agent quiet)", "turn",
           "time_to_yield", "s", "time_to_yield", "turn.time_to_yield", optional=True,
           bench=("yield p50", "p50")),
    Figure("talk_over", "Talk-over (caller and agent at once)", "turn", "talk_over", "s",
           "talk_over", "turn.talk_over", optional=True),
    Figure("backchannels", "Backchannels said by the caller", "turn", "backchannels", "count",
           "backchannels", "turn.backchannels", optional=True),
    Figure("false_interruptions", "False interruptions (agent stopped for a backchannel)",
           "turn", "false_interruptions", "count", "false_interruptions",
           "turn.false_interruptions", optional=True, bench=("false int.", "sum")),
    Figure("eot_mispredictions", "Premature ends of turn (half a line answered)", "turn",
           "eot_mispredictions", "count", "eot_mispredictions", "turn.eot_mispredictions",
           optional=True, bench=("early EOT", "sum")),
    Figure("livekit.false_interruptions", "LiveKit's agent_false_interruption events", "turn",
           "livekit_false_interruptions", "count", "livekit_false_interruptions",
           optional=True),
    Figure("stt.wer", "STT word error rate (caller's words)", "turn", "stt_wer", "ratio",
           "stt_wer", "stt.wer", optional=True, bench=("STT WER", "mean")),
)

FIGURES_BY_NAME = {f.name: f for f in FIGURES}
# bench voice's conversation columns, in the registry's order
BENCH_VOICE_FIGURES: tuple[Figure, ...] = tuple(f for f in FIGURES if f.bench is not None)
# premature ends of turn: bench voice --sweep's rate (per line answered) against latency
PREMATURE_EOT = FIGURES_BY_NAME["eot_mispredictions"]

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
