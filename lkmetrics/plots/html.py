"""One self-contained HTML report: a header saying what it covers, inline SVG charts drawn
here, and the summary table.

No script, no stylesheet or font from elsewhere: the file opens from disk, offline, and makes
no request. Each chart is an ``<svg class="chart">`` that scales to its column of a grid as
wide as the page; axes carry one unit each (:mod:`lkmetrics.plots.axes`); legends sit under
the plot area, never over the data.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from lkmetrics.figures import FIGURES, FIGURES_BY_NAME, STAGE_LABELS, STAT_NAMES
from lkmetrics.plots.axes import labels, ticks
from lkmetrics.plots.data import PlotData, SessionInfo, quantiles
from lkmetrics.units import fmt_value, timestamp

W, H = 720, 280
PAD_L, PAD_R, PAD_T, PAD_B = 72, 40, 30, 44
LEGEND_ROW = 18
CHAR_W = 6.6  # the width of a legend character at 11px, near enough to lay entries out
STAGE_COLORS = {"end_of_turn": "#b04fc2", "llm_ttft": "#1f9bb3", "first_sentence": "#3b6fd4",
                "tts_ttfb": "#3a9a3a", "playback": "#d4a017", "unexplained": "#9a9a9a"}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
MAX_LISTED = 12  # sessions listed one by one in the header; more are summed up


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def legend_rows(entries: Sequence[tuple[str, str]]) -> list[list[tuple[str, str, float]]]:
    """Legend entries laid out left to right, wrapped to the plot's width: (name, color, x)."""
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = float(PAD_L)
    for name, color in entries:
        size = 16 + len(name) * CHAR_W + 14
        if rows[-1] and x + size > W - PAD_R:
            rows.append([])
            x = float(PAD_L)
        rows[-1].append((name, color, x))
        x += size
    return [r for r in rows if r]


class _Chart:
    """An SVG plot area: y from ``yt[0]`` to ``yt[-1]`` (tick values), x as a fraction."""

    def __init__(self, title: str, yt: Sequence[float], ylabels: Sequence[str]) -> None:
        self.title = title
        self.yt, self.ylabels = list(yt), list(ylabels)
        self.parts: list[str] = []

    def y(self, v: float) -> float:
        lo, hi = self.yt[0], self.yt[-1]
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / ((hi - lo) or 1.0))

    @staticmethod
    def x(frac: float) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * frac

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def xticks(self, values: Sequence[float], names: Sequence[str]) -> None:
        lo, hi = values[0], values[-1]
        for v, name in zip(values, names, strict=True):
            x = self.x((v - lo) / ((hi - lo) or 1.0))
            self.add(f'<line x1="{x:.1f}" y1="{H - PAD_B}" x2="{x:.1f}" y2="{H - PAD_B + 4}" '
                     f'stroke="#444"/><text x="{x:.1f}" y="{H - PAD_B + 16}" class="a">'
                     f"{_e(name)}</text>")

    def render(self, xlabel: str, legend: Sequence[tuple[str, str]] = (),
               line_legend: bool = False) -> str:
        rows = legend_rows(legend)
        height = H + LEGEND_ROW * len(rows)
        axes = [f'<text x="{PAD_L}" y="18" class="t">{_e(self.title)}</text>']
        for v, name in zip(self.yt, self.ylabels, strict=True):
            y = self.y(v)
            axes.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" '
                        'stroke="#e4e4e4"/>')
            axes.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="y">{_e(name)}</text>')
        axes += [f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" '
                 'stroke="#444"/>',
                 f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#444"/>',
                 f'<text x="{(W + PAD_L) / 2}" y="{H - 6}" class="a">{_e(xlabel)}</text>']
        key = []
        for r, row in enumerate(rows):
            y = H + 4 + r * LEGEND_ROW
            for name, color, x in row:
                mark = (f'<line x1="{x:.1f}" y1="{y + 5}" x2="{x + 12:.1f}" y2="{y + 5}" '
                        f'stroke="{color}" stroke-width="2"/>' if line_legend else
                        f'<rect x="{x:.1f}" y="{y}" width="10" height="10" fill="{color}"/>')
                key.append(f'{mark}<text x="{x + 16:.1f}" y="{y + 9}" class="l">{_e(name)}'
                           "</text>")
        return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" '
                f'viewBox="0 0 {W} {height}" role="img" aria-label="{_e(self.title)}">'
                + "".join(axes) + "".join(self.parts) + "".join(key) + "</svg>")


def time_axis(top: float) -> tuple[list[float], list[str]]:
    yt = ticks(0.0, top)
    return yt, labels(yt, "s")


def stage_bars(data: PlotData) -> str:
    turns = data.turns
    top = max([sum(t.stages.values()) for t in turns] + [t.e2e or 0 for t in turns] + [0.001])
    c = _Chart("Per-turn latency by stage", *time_axis(top))
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
    used = [s for s in STAGE_COLORS if any(s in t.stages for t in turns)]
    return c.render(f"turn, in time order ({n})", [(STAGE_LABELS.get(s, s), STAGE_COLORS[s])
                                                           for s in used])


def cdf(name: str, groups: dict[str, list[float]], unit: str) -> str:
    """Each group's empirical CDF as a step line from its first value; p50 and p95 dashed."""
    everything = [v for values in groups.values() for v in values]
    xt = ticks(min(everything), max(everything))
    lo, hi = xt[0], xt[-1]
    c = _Chart(f"{name}: cumulative distribution (p50, p95 dashed)", [0, 0.25, 0.5, 0.75, 1],
               ["0%", "25%", "50%", "75%", "100%"])

    def fx(v: float) -> float:
        return c.x((v - lo) / ((hi - lo) or 1.0))

    ordered = sorted(groups.items())
    for gi, (_group, values) in enumerate(ordered):
        color = PALETTE[gi % len(PALETTE)]
        values = sorted(values)
        n = len(values)
        pts = [f"{fx(lo):.1f},{c.y(0):.1f}"]
        for i, v in enumerate(values):  # a step up of 1/n at each value
            pts += [f"{fx(v):.1f},{c.y(i / n):.1f}", f"{fx(v):.1f},{c.y((i + 1) / n):.1f}"]
        pts.append(f"{fx(hi):.1f},{c.y(1):.1f}")
        c.add(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" '
              'stroke-width="1.5"/>')
        for q in quantiles(values):
            if q is not None:
                x = fx(q)
                c.add(f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}" '
                      f'stroke="{color}" stroke-dasharray="4 3"/>')
    c.xticks(xt, labels(xt, unit))
    legend = [(f"{g} (n={len(v)})", PALETTE[i % len(PALETTE)])
              for i, (g, v) in enumerate(ordered)]
    only = ordered[0][1] if len(ordered) == 1 else None
    xlabel = (f"{len(only)} values, p50 {fmt_value(quantiles(sorted(only))[0], unit)}, p95 "
              f"{fmt_value(quantiles(sorted(only))[1], unit)}") if only is not None else ""
    return c.render(xlabel, legend if len(ordered) > 1 else (), line_legend=True)


def series(title: str, points: list[tuple[float, float]], xlabel: str, color: str) -> str:
    """One figure over its own sequence (requests or turns, in time order)."""
    yt, ylabels = time_axis(max((v for _, v in points), default=1.0))
    c = _Chart(title, yt, ylabels)
    n = max(len(points) - 1, 1)
    path = " ".join(f"{c.x(i / n):.1f},{c.y(v):.1f}" for i, (_, v) in enumerate(points))
    c.add(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    if len(points) <= 60:
        c.add("".join(f'<circle cx="{c.x(i / n):.1f}" cy="{c.y(v):.1f}" r="2" fill="{color}"/>'
                      for i, (_, v) in enumerate(points)))
    c.xticks([0.0, 1.0], ["first", f"last ({len(points)})"])
    return c.render(xlabel)


def token_bars(data: PlotData) -> str:
    top = max([p + q for _, p, q in data.tokens] + [1])
    yt = ticks(0.0, float(top))
    c = _Chart("Tokens per LLM request (prompt, completion)", yt, labels(yt, ""))
    n = max(len(data.tokens), 1)
    bw = (W - PAD_L - PAD_R) / n
    for i, (_, prompt, completion) in enumerate(data.tokens):
        x = c.x(i / n) + bw * 0.1
        for base, v, color in ((0, prompt, PALETTE[0]), (prompt, completion, PALETTE[3])):
            y1, y2 = c.y(base + v), c.y(base)
            c.add(f'<rect x="{x:.1f}" y="{y1:.1f}" width="{bw * 0.8:.1f}" '
                  f'height="{max(y2 - y1, 0):.1f}" fill="{color}"/>')
    return c.render(f"LLM request, in time order ({len(data.tokens)})",
                    [("prompt", PALETTE[0]), ("completion", PALETTE[3])])


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
    if data.ttft:
        out.append(series(f"{FIGURES_BY_NAME['llm.ttft'].title}, per request", data.ttft,
                          f"LLM request, in time order ({len(data.ttft)})", PALETTE[0]))
    if data.e2e:
        out.append(series(f"{FIGURES_BY_NAME['e2e'].title}, per turn", data.e2e,
                          f"turn, in time order ({len(data.e2e)})", PALETTE[1]))
    if data.tokens:
        out.append(token_bars(data))
    return out


def _span(sessions: Sequence[SessionInfo]) -> str:
    starts = [s.started for s in sessions if s.started is not None]
    ends = [s.ended or s.started for s in sessions if (s.ended or s.started) is not None]
    if not starts:
        return "-"
    first, last = min(starts), max(e for e in ends if e is not None)
    return f"{timestamp(first)} to {timestamp(last)}"


def header(data: PlotData) -> str:
    """What the report covers: its sessions, their commands, agents and models, and dates."""
    sessions = data.sessions
    models = sorted({m for s in sessions for m in s.models})
    agents = sorted({s.agent for s in sessions if s.agent})
    commands = sorted({s.command for s in sessions if s.command})
    facts = [("Covers", data.description), ("Sessions", str(len(sessions))),
             ("Dates", _span(sessions)), ("Commands", ", ".join(commands) or "-"),
             ("Agent", ", ".join(agents) or "built-in"), ("Models", ", ".join(models) or "-")]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    listed = ""
    if sessions:
        rows = "".join(
            f"<tr><td>{_e(s.id)}</td><td>{_e(timestamp(s.started) if s.started else '-')}"
            f"</td><td>{_e(s.command or '-')}</td><td>{_e(s.agent or '-')}</td>"
            f"<td>{_e(', '.join(s.models) or '-')}</td><td>{_e(s.status or '-')}</td></tr>"
            for s in sessions[-MAX_LISTED:])
        more = (f"<p>and {len(sessions) - MAX_LISTED} earlier sessions</p>"
                if len(sessions) > MAX_LISTED else "")
        listed = ("<table class=\"sessions\"><thead><tr><th>session</th><th>started</th>"
                  "<th>command</th><th>agent</th><th>models</th><th>status</th></tr></thead>"
                  f"<tbody>{rows}</tbody></table>{more}")
    return f'<header><h1>lkmetrics report</h1><dl>{dl}</dl>{listed}</header>'


STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 8px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0 0 12px}
dt{font-weight:600}dd{margin:0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px;
margin:16px 0}
.chart{display:block;width:100%;height:auto;border:1px solid #eee}
.t{font-weight:600;font-size:13px}.a{font-size:11px;text-anchor:middle}
.y{font-size:11px;text-anchor:end}.l{font-size:11px}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
table.sessions td,table.sessions th{text-align:left}"""


def page(data: PlotData) -> str:
    """The whole HTML document."""
    body = "\n".join(charts(data))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\">"
            f"<title>lkmetrics: {_e(data.description)}</title><style>{STYLE}</style></head>"
            f"<body>{header(data)}\n<div class=\"charts\">\n{body}\n</div>\n"
            f"<h2>Summary</h2>{summary_table(data)}</body></html>\n")
