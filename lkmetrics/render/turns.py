"""A turn in the live view: its e2e latency as a bar drawn on the session's one time scale,
its stages in the bar's colours (the legend), what the caller heard and said."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from lkmetrics.figures import FIGURES_BY_NAME, STAGE_LABELS
from lkmetrics.records import STAGE_NAMES, Record, turn_stages
from lkmetrics.render.compact import clip, fold
from lkmetrics.safety import printable
from lkmetrics.units import fmt_value, number, seconds

BAR_WIDTH = 40
STAGE_COLORS = {"end_of_turn": "magenta", "tools": "red", "llm_ttft": "cyan",
                "first_sentence": "blue", "tts_ttfb": "green", "playback": "yellow",
                "unexplained": "grey50"}
# the steps a scale is rounded up to, times a power of ten: 40 cols = 3.0 s, not 2.87 s
_NICE = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
TEXT_LINES = 2  # the lines a turn's heard or said text may take in the recipe view
# "Turn 12  e2e 2.37 s": every bar of a session starts at this column
HEAD_WIDTH = 20


@dataclass(frozen=True)
class BarScale:
    """One time scale for every turn bar of a session: ``cols`` columns are ``span`` seconds,
    so the same e2e draws the same length in every turn."""

    span: float
    cols: int = BAR_WIDTH

    @classmethod
    def for_first(cls, e2e: float, cols: int = BAR_WIDTH) -> BarScale:
        """A scale with room for later turns up to 1.25x longer than the first (longer ones
        run past ``cols``, up to the line's end), rounded up to a nice number of seconds."""
        want = max(e2e * 1.25, 0.01)
        power = 10.0 ** math.floor(math.log10(want))
        span = next(step * power for step in _NICE if step * power >= want * (1 - 1e-9))
        return cls(span, cols)

    def length(self, seconds: float) -> int:
        """The columns ``seconds`` takes (at least one for a positive time)."""
        if seconds <= 0:
            return 0
        return max(1, round(seconds / self.span * self.cols))

    def caption(self) -> Text:
        return Text(f"bar: {self.cols} cols = {fmt_value(self.span, 's')}, "
                    "one scale for every turn", style="dim")


def turn_breakdown(r: Record) -> list[tuple[str, float]]:
    """The named stages of a turn's end-to-end latency, in order (see records.turn_stages):
    they add up to the e2e latency, less any overlap."""
    stages = r.get("stages")
    if not isinstance(stages, dict):  # a record from before stages: derive them
        stages = dict(turn_stages(r, number(r.get("heard_latency"))))
    out: list[tuple[str, float]] = []
    for name in STAGE_NAMES:
        v = number(stages.get(name))
        if v is not None and v > 0.0005:
            out.append((name, v))
    return out


def stacked_bar(stages: list[tuple[str, float]], width: int = BAR_WIDTH) -> Text:
    """``width`` columns shared by the stages in proportion to their times, each in its
    colour (a stage gets at least one column)."""
    total = sum(v for _, v in stages)
    bar = Text()
    if total <= 0 or width <= 0:
        return bar
    used = 0
    for i, (name, v) in enumerate(stages):
        n = width - used if i == len(stages) - 1 else round(v / total * width)
        n = max(n, 1)
        bar.append("█" * n, style=STAGE_COLORS.get(name, "white"))
        used += n
    return bar


def dynamics_note(r: Record) -> str:
    """What the simulated caller measured of the turn's dynamics, in words: ``interrupted,
    yielded in 240 ms``, ``no barge-in (reply ended at 1.2 s)``, ``1 backchannel, agent
    stopped and resumed``, ``answered half the line``, ``WER 0.17``; empty if nothing."""
    parts: list[str] = []
    ttl = number(r.get("time_to_yield"))
    if ttl is not None:
        parts.append(f"interrupted, yielded in {seconds(ttl)}")
    elif r.get("yielded") is False:
        parts.append("barged in, agent did not yield")
    elif isinstance(r.get("barge_in"), str):
        parts.append(str(r["barge_in"]))
    bc = number(r.get("backchannels"))
    if bc:
        n = int(bc)
        said = f"{n} backchannel{'s' if n != 1 else ''}"
        if number(r.get("false_interruptions")):
            said += ", agent stopped" + (" and resumed" if r.get("resumed") else "")
        parts.append(said)
    eot = number(r.get("eot_mispredictions"))
    if eot:
        parts.append("answered half the line" if eot == 1 else f"answered early {int(eot)}x")
    wer = number(r.get("stt_wer"))
    if wer is not None:
        parts.append(f"{FIGURES_BY_NAME['stt.wer'].shown} {fmt_value(wer, 'ratio')}")
    return ", ".join(parts)


def tool_calls(r: Record) -> str:
    """The turn's function tool calls in order, e.g. ``lookup_weather 0.31 s · order 0.00 s
    (error)``; empty for a turn without tools."""
    found = r.get("tools")
    calls = found if isinstance(found, list) else []
    return " · ".join(
        f"{c.get('name')} {fmt_value(number(c.get('duration')), 's')}"
        + ("" if c.get("ok", True) else " (error)") for c in calls if isinstance(c, dict))


def turn_bar(stages: list[tuple[str, float]], e2e: float, scale: BarScale, room: int) -> Text:
    """The turn's bar: ``e2e`` on ``scale``, split by the stages; a bar longer than ``room``
    columns is cut there and ends in ``▸``."""
    n = scale.length(e2e)
    bar = stacked_bar(stages, n)
    if n > room:
        bar.truncate(max(room - 1, 0))
    return bar


def turn_line(r: Record, width: int = 80, *, compact: bool = False,
              scale: BarScale | None = None) -> RenderableType:
    """The turn: its e2e and a bar of its stages on ``scale`` (only with an e2e latency;
    default: a scale for this turn alone), the stages in the bar's colours, folded between
    stages so the line never wraps, and what was heard and said (one line each when
    ``compact``)."""
    e2e = number(r.get("e2e_latency"))
    head = Text.assemble((f"Turn {r.get('turn')}", "bold"),
                         f"  {FIGURES_BY_NAME['e2e'].shown} ",
                         (seconds(e2e), "bold yellow"))
    stages = turn_breakdown(r)
    items = [Text(f"{STAGE_LABELS.get(n, n)} {fmt_value(v, 's')}",
                  style=STAGE_COLORS.get(n, "")) for n, v in stages]
    found = r.get("stages")
    extra: dict[str, Any] = found if isinstance(found, dict) else {}
    overlap = number(extra.get("overlap"))
    if overlap is not None and overlap > 0.0005:
        items.append(Text(f"{STAGE_LABELS['overlap']} {fmt_value(overlap, 's')}"))
    heard = number(r.get("heard_latency"))
    if heard is not None:  # what the simulated caller heard, on its own clock
        items.append(Text(f"{FIGURES_BY_NAME['heard'].shown} {seconds(heard)}"))
    dynamics = dynamics_note(r)
    if dynamics:
        items.append(Text(printable(dynamics), style="magenta"))
    if e2e is not None and stages:
        scale = scale or BarScale.for_first(e2e)
        head.pad_right(max(HEAD_WIDTH - head.cell_len, 0) + 2)
        bar = turn_bar(stages, e2e, scale, width - head.cell_len)
        head.append_text(bar)
        if scale.length(e2e) > bar.cell_len:
            head.append("▸", style="bold")
    lines: list[RenderableType] = [head, *fold(items, width)]
    calls = tool_calls(r)
    if calls:
        lines.append(Text.assemble(("  tools: ", "dim"), printable(calls)))
    for key, label in (("user_text", "heard"), ("agent_text", "said ")):
        if r.get(key):  # what was said: one line (compact) or two, never a wall
            said = clip(r[key], width - 9, 1 if compact else TEXT_LINES).split("\n")
            lines.append(Text.assemble((f"  {label}: ", "dim"), ("\n" + " " * 9).join(
                printable(part) for part in said)))
    return Group(*lines)
