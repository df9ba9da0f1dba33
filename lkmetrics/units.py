"""The one number formatter: times, rates, token counts, ratios and timestamps for people.

Every table (live, summary, ``sessions``, ``report``, ``compare``) formats through here, so a
figure reads the same wherever it is shown: ``312 ms``, ``1.24 s``, ``33.9 tok/s``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

MISSING = "-"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value: Any) -> float | None:
    """The value as a float when it is a number (not a bool), else None."""
    return float(value) if is_number(value) else None


def fmt_value(value: float | int | None, unit: str) -> str:
    """A value in its unit: ``312 ms``, ``4.2 ms``, ``1.24 s``, ``33.9 tok/s``, ``0.019 req/s``,
    ``$0.00213``; ``-`` if None. The one spelling of every unit: a space before it, token
    rates in ``tok/s``.
    """
    if value is None:
        return MISSING
    if unit == "s":
        if abs(value) < 1:
            ms = value * 1000
            return f"{ms:.1f} ms" if abs(ms) < 10 else f"{ms:.0f} ms"
        return f"{value:.2f} s"
    if unit in ("tok/s", "req/s"):
        # 1 decimal, or 2 significant digits below 1 (one 52 s request is 0.019 req/s)
        return f"{value:.2g} {unit}" if 0 < abs(value) < 1 else f"{value:.1f} {unit}"
    if unit == "USD":
        return f"${value:.5f}" if abs(value) < 0.1 else f"${value:.4f}"
    if unit == "count":
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if unit == "ratio":
        return f"{value:.3f}"
    return f"{value:g} {unit}".strip()


def seconds(value: Any) -> str:
    """A time as :func:`fmt_value` gives it, from any value (``-`` unless a number)."""
    return fmt_value(float(value), "s") if is_number(value) else MISSING


def signed(value: float | None, unit: str) -> str:
    """A difference with its sign: ``+12 ms``, ``-1.20 s``."""
    if value is None:
        return MISSING
    return ("+" if value > 0 else "") + fmt_value(value, unit)


def ratio(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def recipe_seconds(value: Any) -> str:
    """LiveKit's recipe tables print seconds with 4 decimals (``0.3127 s``)."""
    return f"{value:.4f} s" if is_number(value) else MISSING


def count(value: Any) -> str:
    """A count or amount: ``1,204``, ``0.25``; other values as text."""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:,}" if isinstance(value, int) else str(value)


def timestamp(t: Any) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``."""
    if not is_number(t):
        return MISSING
    try:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a time no date holds (an older store)
        return MISSING


def short_time(t: Any) -> str:
    """A Unix time as compact local ``MM-DD HH:MM`` (the year goes: tables stay narrow)."""
    if not is_number(t):
        return MISSING
    return datetime.fromtimestamp(t).strftime("%m-%d %H:%M")


def elapsed(value: float | None) -> str:
    """A session's length: ``12.3 s``, ``4m05s``, ``2h03m``."""
    if value is None or not math.isfinite(value):
        return MISSING
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
