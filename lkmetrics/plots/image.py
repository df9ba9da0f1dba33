"""The HTML report's charts as one PNG or SVG image, drawn with matplotlib (``plots`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lkmetrics.figures import FIGURES_BY_NAME, STAGE_LABELS
from lkmetrics.plots.data import PlotData, quantiles
from lkmetrics.plots.extra import need
from lkmetrics.plots.html import PALETTE, STAGE_COLORS


def write_image(data: PlotData, path: Path) -> int:
    """Draw the charts into ``path`` (.png or .svg); returns the number of charts."""
    need("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {n: g for n, g in data.figures.items() if any(g.values())}
    count = (1 if data.turns else 0) + len(figures) + (1 if data.ttft or data.e2e else 0) + (
        1 if data.tokens else 0)
    cols = 2
    rows = max(1, (count + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.2 * rows), squeeze=False)
    flat: list[Any] = [a for row in axes for a in row]
    i = 0
    if data.turns:
        ax = flat[i]
        i += 1
        xs = list(range(1, len(data.turns) + 1))
        bottom = [0.0] * len(xs)
        for stage, color in STAGE_COLORS.items():
            v = [t.stages.get(stage, 0.0) for t in data.turns]
            ax.bar(xs, v, bottom=bottom, color=color, label=STAGE_LABELS.get(stage, stage))
            bottom = [b + x for b, x in zip(bottom, v, strict=True)]
        ax.set_title("Per-turn latency by stage (s)")
        ax.set_xlabel("turn")
        ax.legend(fontsize=7)
    for name, groups in figures.items():
        ax = flat[i]
        i += 1
        for gi, (group, values) in enumerate(sorted(groups.items())):
            if not values:
                continue
            color = PALETTE[gi % len(PALETTE)]
            n = len(values)
            ax.step(values, [(k + 1) / n for k in range(n)], where="post", color=color,
                    label=group)
            for q in quantiles(values):
                if q is not None:
                    ax.axvline(q, color=color, linestyle="--", linewidth=0.8)
        ax.set_title(f"{name}: CDF (p50, p95 dashed)")
        if len(groups) > 1:
            ax.legend(fontsize=7)
    if data.ttft or data.e2e:
        ax = flat[i]
        i += 1
        ttft, e2e = FIGURES_BY_NAME["llm.ttft"].name, FIGURES_BY_NAME["e2e"].name
        for gi, (label, pts) in enumerate(((ttft, data.ttft), (e2e, data.e2e))):
            ax.plot(range(1, len(pts) + 1), [v for _, v in pts], color=PALETTE[gi],
                    label=label, marker=".")
        ax.set_title(f"{ttft} and {e2e} over time (s)")
        ax.legend(fontsize=7)
    if data.tokens:
        ax = flat[i]
        i += 1
        xs = list(range(1, len(data.tokens) + 1))
        prompt = [p for _, p, _ in data.tokens]
        ax.bar(xs, prompt, color=PALETTE[0], label="prompt")
        ax.bar(xs, [c for _, _, c in data.tokens], bottom=prompt, color=PALETTE[3],
               label="completion")
        ax.set_title("Tokens per LLM request")
        ax.legend(fontsize=7)
    for ax in flat[i:]:
        ax.axis("off")
    fig.suptitle(f"lkmetrics: {data.description}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return count
