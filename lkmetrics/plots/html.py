"""One self-contained HTML report: inline SVG charts drawn here and the summary table.

No script, no stylesheet or font from elsewhere: the file opens from disk, offline, and makes
no request. Each chart is an ``<svg class="chart">``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from lkmetrics.figures import FIGURES, FIGURES_BY_NAME, STAGE_LABELS, STAT_NAMES
from lkmetrics.plots.data import PlotData, quantiles
from lkmetrics.units import fmt_value

W, H = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 28, 36
STAGE_COLORS = {"end_of_turn": "#b04fc2", "llm_ttft": "#1f9bb3", "first_sentence": "#3b6fd4",
                "tts_ttfb": "#3a9a3a", "playback": "#d4a017", "unexplained": "#9a9a9a"}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    for exp in range(-4, 8):
        for step in (1, 2, 2.5, 5):
            top = float(step * 10.0 ** exp)
            if top >= v:
                return top
    return v


class _Chart:
    """An SVG plot area with a y axis from 0 (or ``y0``) to a nice maximum."""

    def __init__(self, title: str, ymax: float, unit: str, y0: float = 0.0) -> None:
        self.title, self.unit, self.y0 = title, unit, y0
        self.ymax = _nice_max(ymax) if y0 == 0 else ymax
        self.parts: list[str] = []

    def y(self, v: float) -> float:
        span = (self.ymax - self.y0) or 1.0
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - self.y0) / span)

    @staticmethod
    def x(frac: float) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * frac

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def render(self, xlabel: str, legend: Sequence[tuple[str, str]] = ()) -> str:
        axes = [f'<text x="{PAD_L}" y="16" class="t">{_e(self.title)}</text>',
                f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" '
                'stroke="#444"/>',
                f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#444"/>',
                f'<text x="{(W + PAD_L) / 2}" y="{H - 6}" class="a">{_e(xlabel)}</text>']
        for i in range(5):
            v = self.y0 + (self.ymax - self.y0) * i / 4
            y = self.y(v)
            label = fmt_value(v, self.unit) if self.unit else f"{v:g}"
            axes.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" '
                        'stroke="#ddd"/>')
            axes.append(f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" class="y">{_e(label)}</text>')
        lx = W - PAD_R - 8
        for i, (name, color) in enumerate(legend):
            axes.append(f'<rect x="{lx - 90}" y="{PAD_T + 4 + i * 16}" width="10" height="10" '
                        f'fill="{color}"/><text x="{lx - 76}" y="{PAD_T + 13 + i * 16}" '
                        f'class="l">{_e(name)}</text>')
        return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" '
                f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{_e(self.title)}">'
                + "".join(axes) + "".join(self.parts) + "</svg>")


def stage_bars(data: PlotData) -> str:
    turns = data.turns
    top = max([sum(t.stages.values()) for t in turns] + [t.e2e or 0 for t in turns] + [0.001])
    c = _Chart("Per-turn latency by stage", top, "s")
    n = max(len(turns), 1)
    bw = (W - PAD_L - PAD_R) / n
    for i, t in enumerate(turns):
        base = 0.0
        for name, v in t.stages.items():
            y1, y2 = c.y(base + v), c.y(base)
            c.add(f'<rect x="{c.x(i / n) + bw * 0.1:.1f}" y="{y1:.1f}" width="{bw * 0.8:.1f}" '
                  f'height="{max(y2 - y1, 0):.1f}" fill="{STAGE_COLORS.get(name, "#555")}">'
                  f'<title>turn {_e(t.label)} {STAGE_LABELS.get(name, name)} '
                  f'{fmt_value(v, "s")}</title></rect>')
            base += v
    return c.render("turn", [(STAGE_LABELS.get(n, n), color)
                             for n, color in STAGE_COLORS.items()])


def cdf(name: str, groups: dict[str, list[float]], unit: str) -> str:
    top = max((v[-1] for v in groups.values() if v), default=1.0)
    c = _Chart(f"{name}: cumulative distribution (p50, p95 dashed)", 1.0, "", y0=0.0)
    c.ymax = 1.0
    xmax = _nice_max(top)
    for gi, (_group, values) in enumerate(sorted(groups.items())):
        color = PALETTE[gi % len(PALETTE)]
        n = len(values)
        pts = " ".join(f"{c.x(v / xmax):.1f},{c.y((i + 1) / n):.1f}"
                       for i, v in enumerate(values))
        c.add(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for q in quantiles(values):
            if q is not None:
                x = c.x(q / xmax)
                c.add(f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}" '
                      f'stroke="{color}" stroke-dasharray="4 3"/>')
    for i in range(5):
        v = xmax * i / 4
        c.add(f'<text x="{c.x(i / 4):.1f}" y="{H - PAD_B + 14}" class="a">'
              f'{_e(fmt_value(v, unit))}</text>')
    legend = [(g, PALETTE[i % len(PALETTE)]) for i, g in enumerate(sorted(groups))][:6]
    return c.render("", legend if len(groups) > 1 else ())


def series(title: str, lines: dict[str, list[tuple[float, float]]], unit: str) -> str:
    top = max((v for pts in lines.values() for _, v in pts), default=1.0)
    c = _Chart(title, top, unit)
    for gi, (_name, pts) in enumerate(lines.items()):
        if not pts:
            continue
        n = max(len(pts) - 1, 1)
        path = " ".join(f"{c.x(i / n):.1f},{c.y(v):.1f}" for i, (_, v) in enumerate(pts))
        c.add(f'<polyline points="{path}" fill="none" stroke="{PALETTE[gi]}" '
              'stroke-width="1.5"/>')
    return c.render("turn / request, in time order",
                    [(k, PALETTE[i]) for i, k in enumerate(lines)])


def token_bars(data: PlotData) -> str:
    top = max([p + q for _, p, q in data.tokens] + [1])
    c = _Chart("Tokens per LLM request (prompt, completion)", top, "")
    n = max(len(data.tokens), 1)
    bw = (W - PAD_L - PAD_R) / n
    for i, (_, prompt, completion) in enumerate(data.tokens):
        x = c.x(i / n) + bw * 0.1
        for base, v, color in ((0, prompt, PALETTE[0]), (prompt, completion, PALETTE[3])):
            y1, y2 = c.y(base + v), c.y(base)
            c.add(f'<rect x="{x:.1f}" y="{y1:.1f}" width="{bw * 0.8:.1f}" '
                  f'height="{max(y2 - y1, 0):.1f}" fill="{color}"/>')
    return c.render("request", [("prompt", PALETTE[0]), ("completion", PALETTE[3])])


def summary_table(data: PlotData) -> str:
    report = data.report
    if report is None:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for h in (
        *(["group"] if report.by else []), "figure", *STAT_NAMES))
    rows = []
    for r in report.rows:
        cells = [*([r.group] if report.by else []), r.figure.name, str(r.stats["count"]),
                 *(fmt_value(r.stats[k], r.figure.unit) for k in STAT_NAMES[1:])]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def charts(data: PlotData) -> list[str]:
    """Every chart of the report, as SVG elements."""
    out = []
    if data.turns:
        out.append(stage_bars(data))
    units = {f.name: f.unit for f in FIGURES}
    for name, groups in data.figures.items():
        if any(groups.values()):
            out.append(cdf(name, {g: v for g, v in groups.items() if v}, units[name]))
    if data.ttft or data.e2e:
        ttft, e2e = FIGURES_BY_NAME["llm.ttft"].name, FIGURES_BY_NAME["e2e"].name
        out.append(series(f"{ttft} and {e2e} over time", {ttft: data.ttft, e2e: data.e2e},
                          "s"))
    if data.tokens:
        out.append(token_bars(data))
    return out


STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}
.chart{display:block;margin:12px 0;border:1px solid #eee}
.t{font-weight:600;font-size:13px}.a{font-size:11px;text-anchor:middle}
.y{font-size:11px;text-anchor:end}.l{font-size:11px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}"""


def page(data: PlotData) -> str:
    """The whole HTML document."""
    body = "\n".join(charts(data))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>lkmetrics: {_e(data.description)}</title><style>{STYLE}</style></head>"
            f"<body><h1>lkmetrics: {_e(data.description)}</h1>\n{body}\n"
            f"<h2>Summary</h2>{summary_table(data)}</body></html>\n")
