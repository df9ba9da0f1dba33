"""The caller's conversation-dynamics figures everywhere the other figures go: the store's
columns (migration 8), report --format json, budgets, the fleet series."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lkmetrics.errors import UsageError
from tests.helpers.store import run, session_records, write_jsonl

# per turn: time_to_yield, eot_mispredictions, stt_wer, backchannels
DYNAMICS = [(0.24, 0, 0.0, 1), (0.52, 1, 1 / 6, 0), (None, 0, 0.5, 1)]


def records() -> list[dict[str, Any]]:
    out = list(session_records("s_dyn", turns=3, seed=3))
    turns = [r for r in out if r["kind"] == "turn"]
    for turn, (ttl, eot, wer, bc) in zip(turns, DYNAMICS, strict=True):
        turn.update({"eot_mispredictions": eot, "stt_wer": wer, "backchannels": bc,
                     "talk_over": 0.1})
        if ttl is not None:
            turn.update({"time_to_yield": ttl, "yielded": True})
    return out


@pytest.fixture
def imported(tmp_path: Path, home: Path) -> Path:
    db = tmp_path / "m.db"
    result = run("import", str(write_jsonl(tmp_path / "s.jsonl", records())), "--db", str(db))
    assert result.exit_code == 0, result.output
    return db


def figures(db: Path, *extra: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = run("report", "--db", str(db), "--format", "json", *extra)
    body = json.loads(result.stdout.splitlines()[0])
    return result.exit_code, {r["figure"]: r for r in body["figures"]}


def test_report_json_has_every_dynamics_figure(imported: Path) -> None:
    code, rows = figures(imported)
    assert code == 0
    assert rows["turn.time_to_yield"]["count"] == 2
    assert rows["turn.time_to_yield"]["max"] == pytest.approx(0.52)
    assert rows["eot_mispredictions"]["max"] == 1
    assert rows["stt.wer"]["mean"] == pytest.approx((0 + 1 / 6 + 0.5) / 3)
    assert rows["backchannels"]["mean"] == pytest.approx(2 / 3)
    assert rows["talk_over"]["count"] == 3
    assert "false_interruptions" not in rows  # not measured: left out, not a row of dashes
    with sqlite3.connect(imported) as conn:  # each in its own column
        got = conn.execute("SELECT time_to_yield, eot_mispredictions, stt_wer FROM records "
                           "WHERE kind = 'turn' ORDER BY seq").fetchall()
    assert got == [(0.24, 0, 0.0), (0.52, 1, pytest.approx(1 / 6)), (None, 0, 0.5)]


@pytest.mark.parametrize(("budget", "broken"), [
    ("turn.time_to_yield.p95=300ms", True), ("turn.time_to_yield.max=0.6s", False),
    ("eot_mispredictions.max=0", True), ("eot_mispredictions.max=1", False),
    ("stt.wer.mean=0.15", True), ("stt.wer.mean=0.3", False),
])
def test_dynamics_budgets(imported: Path, budget: str, broken: bool) -> None:
    code, _ = figures(imported, "--fail-over", budget)
    assert code == (1 if broken else 0)


@pytest.mark.parametrize("spec", ["stt.wer.mean=15ms", "eot_mispredictions.max=1s",
                                  "backchannels.max=$1"])
def test_a_count_or_ratio_budget_takes_a_plain_number(spec: str) -> None:
    from lkmetrics.analysis.budgets import parse_budget

    with pytest.raises(UsageError, match="plain number|not a cost"):
        parse_budget(spec)


def test_fleet_series_observe_the_dynamics() -> None:
    from lkmetrics.fleet.series import Observer

    observer = Observer()
    seen: dict[str, list[float]] = {}
    for record in records():
        for obs in observer.observe(record):
            seen.setdefault(obs.key, []).append(obs.value)
    assert seen["turn.time_to_yield"] == [0.24, 0.52]
    assert seen["stt.wer"] == [0.0, pytest.approx(1 / 6), 0.5]
    assert sum(seen["turn.eot_mispredictions"]) == 1
    assert sum(seen["turn.backchannels"]) == 2
