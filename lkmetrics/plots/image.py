"""The HTML report's charts as one PNG or SVG image, drawn with matplotlib (``plots`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lkmetrics.figures import FIGURES, FIGURES_BY_NAME, STAGE_LABELS
from lkmetrics.plots.axes import labels, ticks
from lkmetrics.plots.data import PlotData, quantiles
from lkmetrics.plots.extra import need
from lkmetrics.plots.html import PALETTE, STAGE_COLORS


def set_ticks(ax: Any, axis: str, lo: float, hi: float, unit: str) -> None:
    """Round ticks over [lo, hi] labelled in one unit (lkmetrics.plots.axes)."""
    values = ticks(lo, hi)
    if axis == "x":
        ax.set_xticks(values, labels(values, unit))
        ax.set_xlim(values[0], values[-1])
    else:
        ax.set_yticks(values, labels(values, unit))
        ax.set_ylim(values[0], values[-1])


def legend_below(ax: Any) -> None:
    """The legend under the axes, never over the data."""
    handles, names = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, names, fontsize=7, loc="upper center", frameon=False,
                  bbox_to_anchor=(0.5, -0.16), ncol=min(len(names), 6))


def write_image(data: PlotData, path: Path) -> int:
    """Draw the charts into ``path`` (.png or .svg); returns the number of charts."""
    need("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # an SVG's text stays text (selectable)
    import matplotlib.pyplot as plt

    figures = {n: g for n, g in data.figures.items() if any(g.values())}
    units = {f.name: f.unit for f in FIGURES}
    count = (1 if data.turns else 0) + len(figures) + (1 if data.ttft else 0) + (
        1 if data.e2e else 0) + (1 if data.tokens else 0)
    cols = 2
    rows = max(1, (count + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.6 * rows), squeeze=False)
    flat: list[Any] = [a for row in axes for a in row]
    i = 0
    if data.turns:
        ax = flat[i]
        i += 1
        xs = list(range(1, len(data.turns) + 1))
        bottom = [0.0] * len(xs)
        for stage, color in STAGE_COLORS.items():
            v = [t.stages.get(stage, 0.0) for t in data.turns]
            if any(v):
                ax.bar(xs, v, bottom=bottom, color=color,
                       label=STAGE_LABELS.get(stage, stage))
                bottom = [b + x for b, x in zip(bottom, v, strict=True)]
        set_ticks(ax, "y", 0.0, max(bottom + [0.001]), "s")
        ax.set_title("Per-turn latency by stage")
        legend_below(ax)
    for name, groups in figures.items():
        ax = flat[i]
        i += 1
        kept = {g: sorted(v) for g, v in groups.items() if v}
        everything = [v for values in kept.values() for v in values]
        xt = ticks(min(everything), max(everything))
        lo, hi = xt[0], xt[-1]
        for gi, (group, values) in enumerate(sorted(kept.items())):
            color = PALETTE[gi % len(PALETTE)]
            n = len(values)
            ax.step([lo, *values, hi], [0.0, *[(k + 1) / n for k in range(n)], 1.0],
                    where="post", color=color, label=f"{group} (n={n})")
            for q in quantiles(values):
                if q is not None:
                    ax.axvline(q, color=color, linestyle="--", linewidth=0.8)
        set_ticks(ax, "x", min(everything), max(everything), units.get(name, ""))
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
        ax.set_title(f"{name}: CDF (p50, p95 dashed)")
        if len(kept) > 1:
            legend_below(ax)
    for title, pts, xlabel, color in (
            (f"{FIGURES_BY_NAME['llm.ttft'].title}, per request", data.ttft,
             "LLM request, in time order", PALETTE[0]),
            (f"{FIGURES_BY_NAME['e2e'].title}, per turn", data.e2e, "turn, in time order",
             PALETTE[1])):
        if not pts:
            continue
        ax = flat[i]
        i += 1
        ax.plot(range(1, len(pts) + 1), [v for _, v in pts], color=color, marker=".")
        set_ticks(ax, "y", 0.0, max(v for _, v in pts), "s")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
    if data.tokens:
        ax = flat[i]
        i += 1
        xs = list(range(1, len(data.tokens) + 1))
        prompt = [p for _, p, _ in data.tokens]
        ax.bar(xs, prompt, color=PALETTE[0], label="prompt")
        ax.bar(xs, [c for _, _, c in data.tokens], bottom=prompt, color=PALETTE[3],
               label="completion")
        ax.set_title("Tokens per LLM request")
        legend_below(ax)
    for ax in flat[i:]:
        ax.axis("off")
    fig.suptitle(f"lkmetrics: {data.description}")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (3.6 * rows)))  # room for the suptitle
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return count
