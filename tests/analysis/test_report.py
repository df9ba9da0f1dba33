"""Summaries, comparisons and budgets, checked against values computed here with numpy."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lkmetrics import units
from lkmetrics.analysis import budgets, compare, report
from lkmetrics.errors import NotFoundError, UsageError
from lkmetrics.figures import FIGURES, FIGURES_BY_NAME, shown_only_if_measured
from lkmetrics.store import Store
from tests.helpers.store import session_records

pytestmark = pytest.mark.usefixtures("wide")  # whole table rows

FAST_START = 1_764_000_000.0
SLOW_START = 1_764_100_000.0
PCTS = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def _values(records: list[dict[str, Any]], figure: str) -> list[float]:
    f = FIGURES_BY_NAME[figure]
    out = []
    for r in records:
        v: Any = r if r["kind"] == f.kind else None
        for key in f.field.split("."):  # "stages.first_sentence" is inside a dict
            v = v.get(key) if isinstance(v, dict) else None
        if isinstance(v, float | int) and not isinstance(v, bool) and v >= 0:
            out.append(float(v))
    return out


def _check(stats: dict[str, float | int | None], values: list[float]) -> None:
    arr = np.array(values)
    assert stats["count"] == len(values)
    if not values:  # a figure these sessions do not have (tool.duration: no --agent tools)
        assert stats["mean"] is None and stats["max"] is None
        return
    assert stats["mean"] == pytest.approx(float(arr.mean()))
    assert stats["max"] == pytest.approx(float(arr.max()))
    for name, p in PCTS.items():
        assert stats[name] == pytest.approx(float(np.percentile(arr, p))), name


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "m.db")
    s.insert(session_records("s_fast", turns=37, seed=11, start=FAST_START))
    s.insert(session_records("s_slow", turns=23, seed=12, start=SLOW_START, scale=2.0,
                             llm="openai/gpt-4o"))
    return s


def _all(store: Store) -> list[dict[str, Any]]:
    import json

    return [json.loads(j) for (j,) in store.conn.execute("SELECT json FROM records")]


def test_report_over_everything_matches_numpy(store: Store) -> None:
    rep = report.summarise(store, report.select(store, None, None))
    records = _all(store)
    assert [r.figure.name for r in rep.rows] == [
        f.name for f in FIGURES if not shown_only_if_measured(f)]
    for row in rep.rows:
        _check(row.stats, _values(records, row.figure.name))
    llm = [r for r in records if r["kind"] == "llm"]
    tokens = {t.model: t for t in rep.tokens}
    assert set(tokens) == {"openai/gpt-4.1-mini", "openai/gpt-4o"}
    assert tokens["openai/gpt-4o"].requests == 23
    assert sum(t.prompt_tokens for t in rep.tokens) == sum(r["prompt_tokens"] for r in llm)
    assert sum(t.total_tokens for t in rep.tokens) == sum(r["total_tokens"] for r in llm)


def test_report_of_one_session_and_last(store: Store) -> None:
    last = report.select(store, "last", None)
    assert last.scope.session_ids == ("s_slow",)
    rep = report.summarise(store, report.select(store, "s_f", None))  # a unique prefix
    records = [r for r in _all(store) if r["session_id"] == "s_fast"]
    for row in rep.rows:
        _check(row.stats, _values(records, row.figure.name))
    assert [t.model for t in rep.tokens] == ["openai/gpt-4.1-mini"]
    usage = {u["model"]: u for u in rep.usage}
    # usage is the last (cumulative) usage record of the session
    assert usage["openai/gpt-4.1-mini"]["input_tokens"] == sum(
        r["prompt_tokens"] for r in records if r["kind"] == "llm")
    assert usage["cartesia/sonic-3"]["characters_count"] == 40 * 37


@pytest.mark.parametrize("by", ["session", "model", "kind"])
def test_grouped_reports_match_numpy(store: Store, by: str) -> None:
    rep = report.summarise(store, report.select(store, None, None), by)
    records = _all(store)
    session_llm = {"s_fast": "openai/gpt-4.1-mini", "s_slow": "openai/gpt-4o"}
    assert rep.rows
    for row in rep.rows:
        f = row.figure
        if by == "session":
            subset = [r for r in records if r["session_id"] == row.group]
        elif by == "model":
            def model_of(r: dict[str, Any]) -> str:
                meta = r.get("metadata")
                if isinstance(meta, dict):
                    return f"{meta['model_provider']}/{meta['model_name']}"
                return session_llm[str(r["session_id"])]
            subset = [r for r in records if model_of(r) == row.group]
        else:
            assert row.group == f.kind
            subset = records
        _check(row.stats, _values(subset, f.name))
    if by == "kind":
        assert rep.kinds["turn"] == 60 and rep.kinds["session"] == 2
    if by == "model":
        groups = {r.group for r in rep.rows}
        assert {"openai/gpt-4o", "openai/gpt-4.1-mini", "cartesia/sonic-3",
                "deepgram/nova-3"} == groups


def test_since_filters_by_record_time(store: Store) -> None:
    sel = report.select(store, None, "2000-01-01")
    assert report.summarise(store, sel).row("e2e").stats["count"] == 60  # type: ignore
    cut = datetime.fromtimestamp(SLOW_START).isoformat()
    rep = report.summarise(store, report.select(store, None, cut))
    assert rep.row("e2e").stats["count"] == 23  # type: ignore[union-attr]
    with pytest.raises(NotFoundError, match="widen --since"):
        report.summarise(store, report.select(store, None, "1m"))


def test_parse_since() -> None:
    now = 1_000_000.0
    assert report.parse_since("1h", now) == now - 3600
    assert report.parse_since("90m", now) == now - 5400
    assert report.parse_since("1d", now) == now - 86400
    assert report.parse_since("2w", now) == now - 14 * 86400
    assert report.parse_since("9" * 400 + "d", now) == float("-inf")  # issue 8: everything
    assert report.parse_since("2025-11-27") == datetime(2025, 11, 27).timestamp()
    assert report.parse_since("2025-11-27T14:30") == datetime(2025, 11, 27, 14, 30).timestamp()
    for bad in ("yesterday", "1y", "", "-1h"):
        with pytest.raises(UsageError, match="--since"):
            report.parse_since(bad, now)


def test_empty_store_and_missing_session(tmp_path: Path) -> None:
    with Store.open(tmp_path / "empty.db") as s:
        with pytest.raises(NotFoundError, match="no sessions yet"):
            report.select(s, None, None)
        with pytest.raises(NotFoundError, match="no sessions yet"):
            report.overview(s, 20)
        s.insert(session_records("s_1", turns=1))
        with pytest.raises(NotFoundError, match="no session 'nope'"):
            report.select(s, "nope", None)


def test_overview_counts_turns_and_median_latency(store: Store) -> None:
    items = report.overview(store, None)
    assert [i.session.id for i in items] == ["s_slow", "s_fast"]  # newest first
    records = _all(store)
    for item in items:
        e2e = [r["e2e_latency"] for r in records
               if r["session_id"] == item.session.id and r["kind"] == "turn"]
        assert item.turns == len(e2e)
        assert item.p50_e2e == pytest.approx(float(np.percentile(e2e, 50)))
    assert [i.session.id for i in report.overview(store, 1)] == ["s_slow"]


def test_compare_sessions_marks_better_and_worse(store: Store) -> None:
    cmp = compare.compare(store, "s_fast", "s_slow")
    records = _all(store)
    for f in cmp.figures:
        a = _values([r for r in records if r["session_id"] == "s_fast"], f.figure.name)
        b = _values([r for r in records if r["session_id"] == "s_slow"], f.figure.name)
        assert f.p50.a == pytest.approx(float(np.percentile(a, 50)))
        assert f.p95.b == pytest.approx(float(np.percentile(b, 95)))
        assert f.p50.diff == pytest.approx(f.p50.b - f.p50.a)  # type: ignore[operator]
        assert f.p50.ratio == pytest.approx(f.p50.b / f.p50.a)  # type: ignore[operator]
    verdicts = {f.figure.name: f.verdict for f in cmp.figures}
    # every latency of s_slow is scaled by 2: worse
    assert verdicts["e2e"] == "worse" and verdicts["llm.ttft"] == "worse"
    assert cmp.verdict == "worse"
    # the reverse comparison calls A the slow one
    back = compare.compare(store, "s_slow", "s_fast")
    assert {f.figure.name: f.verdict for f in back.figures}["e2e"] == "better"
    assert back.verdict == "better"
    assert "gpt" in cmp.a_label and "/" in cmp.b_label


def test_compare_rates_higher_is_better() -> None:
    rng = random.Random(1)
    slow = [rng.gauss(20, 2) for _ in range(30)]
    fast = [rng.gauss(40, 2) for _ in range(30)]
    same = [rng.gauss(1.0, 0.05) for _ in range(30)]
    cmp = compare.compare_values({"llm.decode_rate": slow, "e2e": same},
                                {"llm.decode_rate": fast, "e2e": list(reversed(same))})
    verdicts = {f.figure.name: f.verdict for f in cmp}
    assert verdicts["llm.decode_rate"] == "better"
    assert verdicts["e2e"] == "unclear"  # the same values
    assert verdicts["tts.ttfb"] == "unclear"  # no data on either side


def test_compare_calls_noise_unclear_and_a_real_gap_worse() -> None:
    """Two samples of one distribution are unclear; 200 ms against 600 ms is worse; three
    values a side are too few; p50 better and p95 worse is unclear, not a win."""
    rng = random.Random(7)

    def ttft(centre: float, n: int = 20) -> list[float]:
        return [rng.gauss(centre, centre * 0.1) for _ in range(n)]

    def verdict(a: list[float], b: list[float]) -> tuple[str, str, str]:
        (f,) = [f for f in compare.compare_values({"llm.ttft": a}, {"llm.ttft": b})
                if f.figure.name == "llm.ttft"]
        return f.p50.verdict, f.p95.verdict, f.verdict

    for _ in range(10):
        assert verdict(ttft(0.2), ttft(0.2))[2] == "unclear"
    assert verdict(ttft(0.2), ttft(0.6)) == ("worse", "worse", "worse")
    assert verdict(ttft(0.6), ttft(0.2))[2] == "better"
    assert verdict([0.0002] * 3, [0.00021] * 3)[2] == "unclear"
    # B: a faster middle and a much slower tail
    a = [0.5 + 0.01 * i for i in range(40)]
    b = [0.3 + 0.01 * i for i in range(32)] + [3.0 + 0.1 * i for i in range(8)]
    p50, p95, overall = verdict(a, b)
    assert (p50, p95, overall) == ("better", "worse", "unclear")


def test_compare_models(store: Store) -> None:
    cmp = compare.compare(store, "gpt-4.1-mini", "openai/gpt-4o", by="model")
    assert (cmp.a, cmp.b) == ("openai/gpt-4.1-mini", "openai/gpt-4o")
    ttft = next(f for f in cmp.figures if f.figure.name == "llm.ttft")
    assert (ttft.count_a, ttft.count_b) == (37, 23)
    with pytest.raises(NotFoundError, match="no model 'claude'"):
        compare.compare(store, "claude", "gpt-4o", by="model")


def test_parse_budgets() -> None:
    b = budgets.parse_budget("e2e.p95=1.2s")
    assert (b.figure.name, b.stat, b.limit) == ("e2e", "p95", 1.2)
    b = budgets.parse_budget("llm.ttft.p50=500ms")
    assert (b.figure.name, b.stat, b.limit) == ("llm.ttft", "p50", 0.5)
    assert budgets.parse_budget("eou.transcription_delay.max = 0.25").limit == 0.25
    assert budgets.parse_budget("llm.decode_rate.p50=40tok/s").limit == 40
    for bad in ("e2e.p95", "e2e=1s", "e2e.p42=1s", "nope.p50=1s", "e2e.p95=fast",
                "e2e.p95=1h", "llm.decode_rate.p50=1s", "e2e.p95=3tok/s", "e2e.p95=-1s"):
        with pytest.raises(UsageError, match="--fail-over"):
            budgets.parse_budget(bad)


def test_check_budgets_names_each_broken_one(store: Store) -> None:
    rep = report.summarise(store, report.select(store, None, None))
    e2e_p95 = rep.row("e2e").stats["p95"]  # type: ignore[union-attr]
    ttft_p50 = rep.row("llm.ttft").stats["p50"]  # type: ignore[union-attr]
    assert isinstance(e2e_p95, float) and isinstance(ttft_p50, float)
    ok = [budgets.parse_budget(f"e2e.p95={e2e_p95 + 0.001}s")]
    budgets.fail_on_broken(budgets.check_budgets(rep, ok))  # within budget: no error
    broken = [budgets.parse_budget(f"e2e.p95={e2e_p95 - 0.01:.3f}s"),
              budgets.parse_budget(f"llm.ttft.p50={ttft_p50 * 1000 - 5:.0f}ms"),
              budgets.parse_budget("tts.ttfb.max=10s")]
    results = budgets.check_budgets(rep, broken)
    assert [r.broken for r in results] == [True, True, False]
    with pytest.raises(budgets.BudgetExceeded) as err:
        budgets.fail_on_broken(results)
    msg = str(err.value)
    assert msg.startswith("2 budgets broken:") and "\n" not in msg
    assert "e2e.p95" in msg and "llm.ttft.p50" in msg and "tts.ttfb" not in msg
    assert err.value.exit_code == 1


def test_budget_on_a_figure_without_values_is_broken_unless_allowed() -> None:
    rep = report.Report("x", None, report.build_rows({}, None))
    (result,) = budgets.check_budgets(rep, [budgets.parse_budget("e2e.p95=1s")])
    assert result.value is None and result.broken
    with pytest.raises(budgets.BudgetExceeded, match=r"e2e\.p95 has no values"):
        budgets.fail_on_broken([result])
    (allowed,) = budgets.check_budgets(rep, [budgets.parse_budget("e2e.p95=1s")],
                                       allow_empty=True)
    assert allowed.value is None and not allowed.broken


def test_a_session_that_timed_out_with_no_turns_fails_its_budgets(tmp_path: Path) -> None:
    """`report last --fail-over ...` on a session that ended `timeout` with no turns: exit 1
    naming the figure with no values; --allow-empty still fails on the status; with
    --allow-status timeout too it passes."""
    from tests.helpers.store import run, write_jsonl

    db = tmp_path / "m.db"
    records = [r for r in session_records("s_timeout", turns=0, summary=False)]
    imported = run("import", str(write_jsonl(tmp_path / "r.jsonl", records)), "--db", str(db))
    assert imported.exit_code == 0, imported.output
    with Store.open(db) as st:
        st.set_exit_status(["s_timeout"], "timeout")
    args = ["report", "last", "--db", str(db), "--fail-over", "e2e.p95=1.2s",
            "--fail-over", "llm.ttft.p95=1s"]
    empty = run(*args)
    assert empty.exit_code == 1, empty.output
    error = [line for line in empty.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "e2e.p95 has no values" in error[0], empty.stderr
    assert "llm.ttft.p95 has no values" in error[0]
    status = run(*args, "--allow-empty")
    assert status.exit_code == 1 and "s_timeout (timeout)" in status.stderr, status.output
    allowed = run(*args, "--allow-empty", "--allow-status", "timeout")
    assert allowed.exit_code == 0, allowed.output
    assert "not checked: no values (allowed)" in allowed.stderr


def test_usage_by_model_sums_sessions() -> None:
    usage = report.usage_by_model([
        [{"type": "llm_usage", "provider": "openai", "model": "m", "input_tokens": 10,
          "output_tokens": 2, "session_duration": 0.0}],
        [{"type": "llm_usage", "provider": "openai", "model": "m", "input_tokens": 5,
          "output_tokens": 1}, {"type": "tts_usage", "provider": "c", "model": "s",
                                "characters_count": 7}],
    ])
    assert usage == [
        {"type": "llm_usage", "model": "openai/m", "sessions": 2, "input_tokens": 15,
         "output_tokens": 3},
        {"type": "tts_usage", "model": "c/s", "sessions": 1, "characters_count": 7},
    ]


def test_fmt_value() -> None:
    assert units.fmt_value(0.3121, "s") == "312 ms"
    assert units.fmt_value(0.0042, "s") == "4.2 ms"
    assert units.fmt_value(1.239, "s") == "1.24 s"
    assert units.fmt_value(33.94, "tok/s") == "33.9 tok/s"
    assert units.fmt_value(None, "s") == "-"


def test_percentiles_on_random_data_match_numpy(tmp_path: Path) -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(-0.5, 0.6) for _ in range(997)]
    with Store.open(tmp_path / "r.db") as s:
        s.insert([{"schema": 1, "kind": "turn", "session_id": "s_r", "seq": i, "time": float(i),
                   "e2e_latency": v} for i, v in enumerate(values)])
        rep = report.summarise(s, report.select(s, "s_r", None))
    _check(rep.row("e2e").stats, values)  # type: ignore[union-attr]


def test_report_leaves_benchmark_sessions_out_unless_asked(tmp_path: Path) -> None:
    """`report` with no session covers the agent sessions; a `bench llm` run's concurrent
    requests join them only with --include-bench, and the header says what is covered."""
    from tests.helpers.store import run, write_jsonl

    db = tmp_path / "m.db"
    agent = [*session_records("s_fast", turns=7, seed=11, start=FAST_START),
             *session_records("s_slow", turns=5, seed=12, start=SLOW_START)]
    bench = list(session_records("s_bench", turns=30, seed=13, start=SLOW_START + 500,
                                 scale=5.0))
    bench[0]["command"] = "bench llm"
    imported = run("import", str(write_jsonl(tmp_path / "r.jsonl", agent + bench)),
                   "--db", str(db))
    assert imported.exit_code == 0, imported.output
    with Store.open(db) as st:
        plain = report.summarise(st, report.select(st, None, None))
        wide = report.summarise(st, report.select(st, None, None, include_bench=True))
    ttft = {r.figure.name: r for r in plain.rows}["llm.ttft"]
    _check(ttft.stats, _values(agent, "llm.ttft"))
    _check({r.figure.name: r for r in wide.rows}["llm.ttft"].stats,
           _values(agent + bench, "llm.ttft"))
    first = datetime.fromtimestamp(FAST_START).isoformat(sep=" ", timespec="minutes")
    assert plain.description.startswith(f"2 sessions (console 2), {first} to ")
    assert plain.description.endswith("; 1 bench session left out (--include-bench)")
    assert wide.description.startswith("3 sessions (console 2, bench llm 1), ")
    out = run("report", "--db", str(db), "--format", "json")
    import json

    assert json.loads(out.stdout)["scope"] == plain.description
    assert run("report", "--db", str(db), "--include-bench").exit_code == 0
