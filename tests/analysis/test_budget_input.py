"""Budget limits (issue 22): ASCII digits only (full-width and other Unicode digits refused
with one line), a space before the unit allowed, as the README says."""

from __future__ import annotations

import pytest

from lkmetrics.analysis.budgets import parse_budget
from lkmetrics.errors import UsageError


@pytest.mark.parametrize("spec", ["e2e.p95=１.2s", "e2e.p95=1.２s", "llm.ttft.p50=٥00ms",
                                  "e2e.p95=1.2\u2009s"])
def test_unicode_digits_and_odd_spaces_are_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="--fail-over expects FIGURE.STAT=LIMIT"):
        parse_budget(spec)


@pytest.mark.parametrize("spec,limit", [("e2e.p95=1.2 s", 1.2), ("llm.ttft.p50 = 500 ms", 0.5)])
def test_a_space_before_the_unit_is_allowed(spec: str, limit: float) -> None:
    assert parse_budget(spec).limit == pytest.approx(limit)
