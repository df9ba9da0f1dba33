"""Axis ticks for every chart (terminal, HTML): round steps, one unit per axis, so an axis
reads ``0 ms, 250 ms, 500 ms`` or ``1.0 s, 1.5 s, 2.0 s``, never ``-0.0003`` or a mix."""

from __future__ import annotations

import math

STEPS = (1.0, 2.0, 2.5, 5.0)


def nice_step(span: float, count: int = 5) -> float:
    """The smallest round step (1, 2, 2.5 or 5 times a power of ten) cutting ``span`` into at
    most ``count`` parts."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    for step in STEPS:
        if step * power >= raw * (1 - 1e-9):
            return step * power
    return 10.0 * power


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]; from 0 when every value is positive and ``lo``
    is under half of ``hi`` (a latency axis starts at 0 unless its values are bunched)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo <= max(abs(hi), abs(lo)) * 1e-6:  # one value (or equal ones, give or take
        lo, hi = (0.0, hi) if hi > 0 else (lo - 1.0, hi + 1.0)  # float noise)
    if lo >= 0 and lo < hi / 2:
        lo = 0.0
    step = nice_step(hi - lo, count)
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    n = int(round((last - first) / step))
    return [round(first + i * step, 12) for i in range(n + 1)]


def _decimals(step: float) -> int:
    """Decimals that show a step of this size (0.25 -> 2, 0.5 -> 1, 5 -> 0)."""
    for d in range(0, 7):
        if abs(round(step, d) - step) < step * 1e-6:
            return d
    return 6


def axis_unit(values: list[float], unit: str) -> str:
    """The unit an axis of ``values`` (in ``unit``) is labelled in: ``ms`` for times under
    1.5 s, else the figure's own unit."""
    if unit == "s" and values and max(abs(v) for v in values) < 1.5:
        return "ms"
    return unit


def labels(values: list[float], unit: str) -> list[str]:
    """Tick labels in one unit for the whole axis: ``250 ms``, ``1.5 s``, ``40 tok/s``, or
    bare numbers (counts)."""
    shown = axis_unit(values, unit)
    scaled = [v * 1000 for v in values] if shown == "ms" else list(values)
    step = min((b - a for a, b in zip(scaled, scaled[1:], strict=False) if b > a),
               default=1.0)
    d = _decimals(step)
    suffix = f" {shown}" if shown else ""
    return [f"{0.0 if abs(v) < step * 1e-6 else v:.{d}f}{suffix}" for v in scaled]
