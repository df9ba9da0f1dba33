"""Terminal charts with plotext (``plots`` extra): per-turn stacked stages and each figure's
distribution."""

from __future__ import annotations

from typing import IO

from lkmetrics.figures import FIGURES_BY_NAME, STAGE_LABELS
from lkmetrics.plots.data import PlotData, quantiles
from lkmetrics.plots.extra import need
from lkmetrics.render.layout import terminal_width
from lkmetrics.units import fmt_value

STAGE_COLORS = {"end_of_turn": "magenta", "llm_ttft": "cyan", "first_sentence": "blue",
                "tts_ttfb": "green", "playback": "yellow", "unexplained": "gray"}


def draw(data: PlotData, out: IO[str], *, color: bool) -> int:
    """Print the charts to ``out``; returns how many were drawn."""
    need("plotext")
    import plotext as plt

    width = min(terminal_width(), 120)
    drawn = 0

    def show(title: str) -> None:
        nonlocal drawn
        plt.title(title)
        plt.plotsize(width, 18)
        text = plt.build()
        out.write((text if color else plt.uncolorize(text)) + "\n")
        plt.clear_figure()
        drawn += 1

    if data.turns:
        labels = [t.label for t in data.turns]
        stages = [s for s in STAGE_COLORS if any(s in t.stages for t in data.turns)]
        plt.stacked_bar(labels, [[t.stages.get(s, 0.0) for t in data.turns] for s in stages],
                        labels=[STAGE_LABELS.get(s, s) for s in stages],
                        color=[STAGE_COLORS[s] for s in stages])
        show("Per-turn latency by stage (s)")
    for name, groups in data.figures.items():
        values = [v for g in groups.values() for v in g]
        if not values:
            continue
        unit = FIGURES_BY_NAME[name].unit
        p50, p95 = quantiles(sorted(values))
        plt.hist(values, bins=min(30, max(5, len(values) // 2)))
        plt.xlabel(unit)
        show(f"{name}: {len(values)} values, p50 {fmt_value(p50, unit)}, "
             f"p95 {fmt_value(p95, unit)}")
    return drawn
