"""Pure functions over records: the figures we report, percentiles and session summaries.

Percentile definition, used everywhere in lkmetrics: linear interpolation between the two
nearest ranks of the sorted values (``numpy.percentile``'s default, Excel's PERCENTILE.INC):
for n sorted values and percentile p, the rank is ``(n - 1) * p / 100``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lkmetrics.records import (
    LLM,
    TURN,
    USAGE,
    FigureSummary,
    Record,
    SummaryBody,
    model_label,
    summary_record,
)


@dataclass(frozen=True)
class Figure:
    """A reported figure: which field of which record kind, and its unit."""

    name: str
    title: str
    kind: str
    field: str  # a key of the record, or "outer.inner" for one inside a dict field
    unit: str  # "s", "tok/s" or "USD"

    @property
    def higher_is_better(self) -> bool:
        """A rate (tok/s) is better higher; a time or a cost is better lower."""
        return self.unit == "tok/s"


FIGURES: tuple[Figure, ...] = (
    Figure("llm.ttft", "LLM time to first token", "llm", "ttft", "s"),
    Figure("llm.duration", "LLM duration", "llm", "duration", "s"),
    Figure("llm.decode_rate", "LLM decode rate", "llm", "decode_rate", "tok/s"),
    Figure("tts.ttfb", "TTS time to first byte", "tts", "ttfb", "s"),
    Figure("stt.duration", "STT duration", "stt", "duration", "s"),
    Figure("eou.delay", "End-of-utterance delay", "eou", "end_of_utterance_delay", "s"),
    Figure("eou.transcription_delay", "Transcription delay", "eou", "transcription_delay", "s"),
    Figure("e2e", "Turn end-to-end latency", "turn", "e2e_latency", "s"),
    Figure("turn.first_sentence", "Wait for the first sentence", "turn",
           "stages.first_sentence", "s"),
    Figure("turn.unexplained", "Unexplained turn latency", "turn", "stages.unexplained", "s"),
    Figure("heard", "Heard latency (the caller's own clock)", "turn", "heard_latency", "s"),
    Figure("tool.duration", "Function tool duration", "tool", "duration", "s"),
)

FIGURES_BY_NAME = {f.name: f for f in FIGURES}

# kinds that only some agents record (tool: --agent agents with function tools): their figures
# are shown only where they were measured
OPTIONAL_KINDS = frozenset({"tool"})

# costs are computed from usage records and prices (lkmetrics.cost); a turn record carries the
# cost it had when it was recorded (``cost.total``), which the store keeps in a column
COST_FIGURES: tuple[Figure, ...] = (
    Figure("cost.turn", "Cost per turn", "turn", "cost.total", "USD"),
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


class SummaryBuilder:
    """Folds records into the figures of a session summary, one record at a time.

    The summary's ``cost`` (lkmetrics.cost) prices the session's usage with the prices of
    ``LKMETRICS_PRICES`` and the shipped ones; it holds each turn's cost by its ``seq``,
    since a turn's reply usage may be reported after its turn record.
    """

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {f.name: [] for f in FIGURES}
        self.tokens = {"prompt": 0, "completion": 0, "total": 0}
        self.usage: list[dict[str, Any]] = []
        self.records = 0
        self.turns = 0
        self.by_model: dict[str, dict[str, int]] = {}
        self._cost: Any = None  # a lkmetrics.cost.compute.CostTracker, made on first record
        self._cost_error: str | None = None

    def _add_cost(self, record: Record) -> None:
        if self._cost is None and self._cost_error is None:
            from lkmetrics.cost.compute import CostTracker
            from lkmetrics.cost.prices import default_book
            from lkmetrics.errors import LkmetricsError

            try:
                self._cost = CostTracker(default_book())
            except LkmetricsError as e:
                self._cost_error = str(e)
        if self._cost is not None:
            self._cost.add(record)

    def add(self, record: Record) -> None:
        self.records += 1
        self._add_cost(record)
        kind = record.get("kind")
        for figure in FIGURES:
            if figure.kind == kind:
                value = figure_value(figure, record)
                if value is not None:
                    self.values[figure.name].append(value)
        if kind == LLM:
            self.tokens["prompt"] += int(record.get("prompt_tokens") or 0)
            self.tokens["completion"] += int(record.get("completion_tokens") or 0)
            self.tokens["total"] += int(record.get("total_tokens") or 0)
            label = model_label(record) or str(record.get("label", "llm"))
            counts = self.by_model.setdefault(label, {"requests": 0, "prompt_tokens": 0,
                                                       "completion_tokens": 0})
            counts["requests"] += 1
            counts["prompt_tokens"] += int(record.get("prompt_tokens") or 0)
            counts["completion_tokens"] += int(record.get("completion_tokens") or 0)
        elif kind == TURN:
            self.turns += 1
        elif kind == USAGE:
            self.usage = list(record.get("usage") or [])

    def summary(self) -> Record:
        """The closing ``summary`` record body (the pipeline adds the envelope)."""
        figures: dict[str, FigureSummary] = {}
        for name, values in self.values.items():
            stats = describe(values)
            figures[name] = {"count": int(stats["count"] or 0), "p50": stats["p50"],
                             "p95": stats["p95"], "max": stats["max"]}
        body: SummaryBody = {"kind": "summary", "records": self.records, "turns": self.turns,
                             "figures": figures, "tokens": dict(self.tokens),
                             "usage": self.usage,
                             "cost": (self._cost.result().as_dict() if self._cost is not None
                                      else {"error": self._cost_error})}
        return summary_record(body)
