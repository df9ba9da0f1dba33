"""A real Prometheus server scrapes lkmetrics every second during a session and is queried
through its HTTP API: counts equal what the records hold, TTFT's histogram_quantile agrees
with the records' p50 within one bucket, and every query of the shipped dashboard has data."""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lkmetrics.figures import percentile
from lkmetrics.fleet import PrometheusWriter, latency_buckets, open_fleet_writers
from lkmetrics.pipeline import KeptOpen, Pipeline
from lkmetrics.records import Record
from tests.helpers.common import ListWriter
from tests.helpers.fleet import (
    PrometheusServer,
    dashboard_queries,
    run_voice_session,
    wait_for,
)
from tests.helpers.store import session_records

pytestmark = pytest.mark.timeout(180)

BUDGET = 1.25  # an e2e budget: its bucket makes "turns over budget" exact


@pytest.fixture
def exporter() -> Iterator[PrometheusWriter]:
    (w,) = open_fleet_writers(prometheus_port=0, otlp_url=None, budgets=[BUDGET])
    assert isinstance(w, PrometheusWriter)
    yield w
    w.close()


@pytest.fixture
def prometheus(exporter: PrometheusWriter, tmp_path: Path) -> Iterator[PrometheusServer]:
    prom = PrometheusServer(f"127.0.0.1:{exporter.port}", tmp_path)
    wait_for(prom.targets_up, 30, "prometheus to scrape lkmetrics")
    yield prom
    prom.close()


def bucket_index(value: float, buckets: tuple[float, ...]) -> int:
    return next((i for i, b in enumerate(buckets) if value <= b), len(buckets))


def by_model(prom: PrometheusServer, promql: str) -> dict[str, float]:
    return {r["metric"].get("model", ""): float(r["value"][1]) for r in prom.query(promql)}


def check_counts(prom: PrometheusServer, records: list[Record]) -> None:
    """Wait for a scrape that has every record, then compare exactly."""
    kinds = Counter(r["kind"] for r in records)
    wait_for(lambda: prom.value("sum(lkmetrics_turns_total)") == kinds["turn"]
             and prom.value("sum(lkmetrics_llm_duration_seconds_count)") == kinds["llm"],
             20, f"a scrape with {kinds['turn']} turns and {kinds['llm']} LLM calls")
    assert prom.value("sum(lkmetrics_llm_ttft_seconds_count)") == sum(
        1 for r in records if r["kind"] == "llm" and r["ttft"] >= 0)
    assert prom.value("sum(lkmetrics_sessions_total)") == kinds["session"]
    assert prom.value('sum(lkmetrics_llm_tokens_total{kind="completion"})') == sum(
        r["completion_tokens"] for r in records if r["kind"] == "llm")
    assert prom.value("sum(lkmetrics_tts_characters_total)") == sum(
        r["characters_count"] for r in records if r["kind"] == "tts")
    e2e = [r["e2e_latency"] for r in records if r["kind"] == "turn" and r["e2e_latency"]]
    assert prom.value("sum(lkmetrics_turn_e2e_latency_seconds_count)") == len(e2e)
    # the budget is a bucket bound, so "turns within budget" is read exactly
    within = prom.value(f'sum(lkmetrics_turn_e2e_latency_seconds_bucket{{le="{BUDGET}"}})')
    assert within == sum(1 for v in e2e if v <= BUDGET)


def check_ttft_median(prom: PrometheusServer, records: list[Record]) -> None:
    ttfts = sorted(r["ttft"] for r in records if r["kind"] == "llm" and r["ttft"] >= 0)
    p50 = percentile(ttfts, 50)
    estimate = prom.value(
        "histogram_quantile(0.5, sum by (le) (lkmetrics_llm_ttft_seconds_bucket))")
    assert estimate is not None
    buckets = latency_buckets([BUDGET])
    assert abs(bucket_index(estimate, buckets) - bucket_index(p50, buckets)) <= 1, (estimate, p50)


def check_dashboard(prom: PrometheusServer) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        result = prom.query(expr)
        assert result, f"no data for {title!r}: {expr}"
        values = [float(r["value"][1]) for r in result]
        assert any(math.isfinite(v) for v in values), f"only NaN for {title!r}: {expr}"


def check_promtool(port: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read()
    promtool = shutil.which("promtool")
    assert promtool
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_scripted_sessions_of_two_models(exporter: PrometheusWriter,
                                         prometheus: PrometheusServer) -> None:
    lists = ListWriter()
    pipeline = Pipeline([lists, exporter])
    sessions = [
        list(session_records("s_1a2b3c4d5e6f", turns=8, seed=1, llm="openai/gpt-4.1-mini")),
        list(session_records("s_6f5e4d3c2b1a", turns=6, seed=2, llm="openai/gpt-4o",
                             scale=1.5)),
    ]
    # the two sessions interleaved, one turn every 0.4 s: several scrapes see them grow
    streams = [iter(s) for s in sessions]
    while streams:
        for stream in list(streams):
            for record in stream:
                pipeline.put(record["session_id"], record)
                if record["kind"] == "turn":
                    break
            else:
                streams.remove(stream)
        time.sleep(0.4)
    assert pipeline.flush()
    records = [r for r in lists.records if r["kind"] != "summary"]
    check_counts(prometheus, records)
    assert by_model(prometheus, "sum by (model) (lkmetrics_turns_total)") == {
        "gpt-4.1-mini": 8.0, "gpt-4o": 6.0}
    assert by_model(prometheus, "sum by (model) (lkmetrics_llm_duration_seconds_count)") == {
        "gpt-4.1-mini": 8.0, "gpt-4o": 6.0}
    check_ttft_median(prometheus, records)
    check_dashboard(prometheus)
    check_promtool(int(exporter.port or 0))
    assert not pipeline.errors
    pipeline.close()


def test_a_real_voice_session(exporter: PrometheusWriter, prometheus: PrometheusServer,
                              llm_server: Any) -> None:
    questions = ["What is the capital of France?", "And of Spain?", "And of Italy?"]
    records, results = asyncio.run(
        run_voice_session(llm_server, questions, [KeptOpen(exporter)]))
    assert [r.ok for r in results] == [True, True, True]
    kinds = Counter(r["kind"] for r in records)
    assert kinds["turn"] == 3 and kinds["llm"] == 3
    check_counts(prometheus, records)
    # labels: turn records take the session's LLM; LLM calls their own metadata
    assert by_model(prometheus, "sum by (model) (lkmetrics_turns_total)") == {"test-model": 3.0}
    assert by_model(prometheus, "sum by (model) (lkmetrics_llm_ttft_seconds_count)") == {
        "test-model": 3.0}
    check_ttft_median(prometheus, records)
    check_promtool(int(exporter.port or 0))
