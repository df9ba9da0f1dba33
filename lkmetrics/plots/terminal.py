"""Terminal charts with plotext (``plots`` extra): per-turn stacked stages and each figure's
cumulative distribution (CDF) with its p50 and p95. Axes carry one unit each
(:mod:`lkmetrics.plots.axes`); legends are printed under a chart, never over its data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

from lkmetrics.figures import FIGURES, STAGE_LABELS
from lkmetrics.plots.axes import labels, ticks
from lkmetrics.plots.data import PlotData, quantiles
from lkmetrics.plots.extra import need
from lkmetrics.render.layout import terminal_width
from lkmetrics.safety import printable
from lkmetrics.units import fmt_value

STAGE_COLORS = {"end_of_turn": "magenta", "llm_ttft": "cyan", "first_sentence": "blue",
                "tts_ttfb": "green", "playback": "yellow", "unexplained": "gray"}
GROUP_COLORS = ("cyan", "red", "green", "orange", "magenta", "blue", "yellow")
ANSI = {"magenta": 35, "cyan": 36, "blue": 34, "green": 32, "yellow": 33, "gray": 90,
        "red": 31, "orange": 33}
HEIGHT = 18
MAX_GROUPS = len(GROUP_COLORS)  # lines one CDF chart draws (the largest groups)


def swatch(name: str, color: str, mark: str, colored: bool) -> str:
    """One legend entry: ``██ name`` (the mark in the series' color on a color terminal)."""
    shown = f"\x1b[{ANSI.get(color, 39)}m{mark}\x1b[0m" if colored else mark
    return f"{shown} {printable(name)}"


def legend(entries: Sequence[tuple[str, str]], mark: str, colored: bool, width: int,
           note: str = "") -> str:
    """The legend under a chart, wrapped to the chart's width between entries."""
    lines, line, used = [], "", 0
    for name, color in entries:
        cell = swatch(name, color, mark, colored)
        size = len(mark) + 1 + len(printable(name))
        if used and used + 2 + size > width:
            lines.append(line)
            line, used = "", 0
        line += ("  " if used else "") + cell
        used += (2 if used else 0) + size
    if note:
        if used and used + 2 + len(note) > width:
            lines.append(line)
            line, used = "", 0
        line += ("  " if used else "") + note
    lines.append(line)
    return "\n".join("    " + x for x in lines)


def turn_label(label: str, several_sessions: bool) -> str:
    """``3`` for a turn of the one session shown; ``3f9:3`` (the session id's start after
    ``s_``) when several are: plotext cuts longer bar labels."""
    if not several_sessions or ":" not in label:
        return label
    sid, turn = label.rsplit(":", 1)
    return f"{sid.removeprefix('s_')[:3]}:{turn}"


def draw(data: PlotData, out: IO[str], *, color: bool) -> int:
    """Print the charts to ``out``; returns how many were drawn."""
    need("plotext")
    import plotext as plt

    width = min(terminal_width(), 120)
    drawn = 0

    def show(title: str, under: str) -> None:
        nonlocal drawn
        plt.title(printable(title))
        plt.plotsize(width, HEIGHT)
        if not color:
            plt.theme("clear")
        text = plt.build()
        out.write((text if color else plt.uncolorize(text)) + "\n" + under + "\n\n")
        plt.clear_figure()
        drawn += 1

    if data.turns:
        stage_chart(plt, data)
        stages = [s for s in STAGE_COLORS if any(s in t.stages for t in data.turns)]
        show("Per-turn latency by stage",
             legend([(STAGE_LABELS.get(s, s), STAGE_COLORS[s]) for s in stages], "██",
                    color, width))
    units = {f.name: f.unit for f in FIGURES}
    for name, groups in data.figures.items():
        kept = {g: sorted(v) for g, v in groups.items() if v}
        if not kept:
            continue
        title, entries = cdf_chart(plt, name, kept, units.get(name, ""))
        show(title, legend(entries, "──", color, width,
                           "(dotted: p50 and p95)" if entries else "dotted: p50 and p95"))
    return drawn


def stage_chart(plt: Any, data: PlotData) -> None:
    """Stacked bars, a turn each, on a time axis in one unit."""
    several = len({t.label.rsplit(":", 1)[0] for t in data.turns}) > 1 and all(
        ":" in t.label for t in data.turns)
    names = [turn_label(printable(t.label), several) for t in data.turns]
    stages = [s for s in STAGE_COLORS if any(s in t.stages for t in data.turns)]
    plt.stacked_bar(names, [[t.stages.get(s, 0.0) for t in data.turns] for s in stages],
                    color=[STAGE_COLORS[s] for s in stages])
    top = max([sum(t.stages.values()) for t in data.turns] + [0.001])
    yt = ticks(0.0, top)
    plt.yticks(yt, labels(yt, "s"))
    plt.ylim(yt[0], yt[-1])
    plt.xlabel("turn (session:turn)" if several else "turn")


def cdf_chart(plt: Any, name: str, groups: dict[str, list[float]], unit: str
              ) -> tuple[str, list[tuple[str, str]]]:
    """Each group's empirical CDF as a step line, its p50 and p95 as dotted vertical lines;
    the title and the legend entries (none for a single group)."""
    shown = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:MAX_GROUPS]
    everything = [v for _, values in shown for v in values]
    xt = ticks(min(everything), max(everything))
    entries = []
    for i, (group, values) in enumerate(shown):
        c = GROUP_COLORS[i % len(GROUP_COLORS)]
        n = len(values)
        xs, ys = [xt[0]], [0.0]
        for k, v in enumerate(values):  # a step up of 1/n at each value
            xs += [v, v]
            ys += [k / n, (k + 1) / n]
        xs.append(xt[-1])
        ys.append(1.0)
        plt.plot(xs, ys, color=c, marker="braille")
        for q in quantiles(values):
            if q is not None:
                plt.plot([q] * 9, [j / 8 for j in range(9)], color=c, marker=".")
        entries.append((f"{group} (n={n})", c))
    plt.xticks(xt, labels(xt, unit))
    plt.xlim(xt[0], xt[-1])
    plt.yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    plt.ylim(0, 1)
    if len(shown) == 1:
        values = shown[0][1]
        p50, p95 = quantiles(values)
        title = (f"{name}: CDF of {len(values)} values, p50 {fmt_value(p50, unit)}, "
                 f"p95 {fmt_value(p95, unit)}")
        return title, []
    more = len(groups) - len(shown)
    title = f"{name}: CDF by group" + (f" ({more} smaller groups not drawn)" if more else "")
    return title, entries
