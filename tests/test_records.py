"""The record model, the statistics, the pipeline and the relay from job processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lkmetrics.agent.relay import RelayServer
from lkmetrics.figures import FIGURES_BY_NAME, describe, figure_value, percentile
from lkmetrics.pipeline import Pipeline, SummaryBuilder
from lkmetrics.records import decode_rate, kind_of_metric, metric_record, model_label
from tests.helpers.common import ListWriter, subprocess_env


def test_decode_rate_excludes_the_wait_for_the_first_token() -> None:
    assert decode_rate(20, 1.5, 0.5) == pytest.approx(20.0)
    assert decode_rate(0, 1.5, 0.5) is None
    assert decode_rate(10, 0.5, 0.5) is None  # no decoding window
    assert decode_rate(10, 1.0, -1) is None  # LiveKit's "no first token"


def test_metric_record_keeps_livekit_fields_and_validates_back() -> None:
    from livekit.agents.metrics import AgentMetrics, LLMMetrics
    from livekit.agents.metrics.base import Metadata
    from pydantic import TypeAdapter

    m = LLMMetrics(label="l", request_id="r", timestamp=1.0, duration=2.0, ttft=0.5,
                   cancelled=False, completion_tokens=30, prompt_tokens=10,
                   prompt_cached_tokens=0, total_tokens=40, tokens_per_second=15.0,
                   metadata=Metadata(model_name="gpt-4.1-mini", model_provider="openai"))
    rec = metric_record(m.model_dump(mode="json"))
    assert rec["kind"] == "llm" and rec["type"] == "llm_metrics"
    assert rec["decode_rate"] == pytest.approx(20.0)
    back: object = TypeAdapter(AgentMetrics).validate_python({**rec, "schema": 1, "seq": 1})
    assert back == m
    assert model_label(rec) == "openai/gpt-4.1-mini"
    assert kind_of_metric("realtime_model_metrics") == "realtime"
    assert kind_of_metric("brand_new_metrics") == "brand_new"


@pytest.mark.parametrize("n", [1, 2, 5, 100, 1001])
def test_percentiles_match_numpy(n: int) -> None:
    values = sorted(np.random.default_rng(n).exponential(0.4, n).tolist())
    for p in (0, 50, 90, 95, 99, 100):
        assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))
    stats = describe(values)
    assert stats["count"] == n
    assert stats["mean"] == pytest.approx(float(np.mean(values)))
    assert stats["max"] == max(values)


def test_figures_skip_not_measured_values() -> None:
    ttft = FIGURES_BY_NAME["llm.ttft"]
    assert figure_value(ttft, {"kind": "llm", "ttft": -1}) is None
    assert figure_value(ttft, {"kind": "tts", "ttft": 0.2}) is None
    assert figure_value(ttft, {"kind": "llm", "ttft": 0.2}) == 0.2


def test_summary_counts_tokens_and_figures() -> None:
    b = SummaryBuilder()
    for ttft in (0.1, 0.2, 0.3):
        b.add({"kind": "llm", "ttft": ttft, "duration": ttft * 2, "prompt_tokens": 5,
               "completion_tokens": 7, "total_tokens": 12, "decode_rate": 10.0})
    b.add({"kind": "turn", "e2e_latency": 1.0})
    s = b.summary()
    assert s["figures"]["llm.ttft"] == {"count": 3, "mean": pytest.approx(0.2), "p50": 0.2,
                                        "p95": pytest.approx(0.29), "max": 0.3,
                                        "sum": pytest.approx(0.6)}
    assert s["tokens"] == {"prompt": 15, "completion": 21, "total": 36}
    assert s["turns"] == 1


def test_pipeline_numbers_records_per_session_and_summarises_at_close() -> None:
    w = ListWriter()
    p = Pipeline([w])
    for i in range(3):
        p.put("a", {"kind": "llm", "ttft": 0.1 * (i + 1), "duration": 1.0})
        p.put("b", {"kind": "turn", "e2e_latency": 1.0})
    p.end_session("b")
    p.put("a", "ignored", lambda item: None)  # a converter may drop an item
    p.close()
    a = [r for r in w.records if r["session_id"] == "a"]
    b = [r for r in w.records if r["session_id"] == "b"]
    assert [r["seq"] for r in a] == [1, 2, 3, 4] and a[-1]["kind"] == "summary"
    assert [r["seq"] for r in b] == [1, 2, 3, 4] and b[-1]["kind"] == "summary"
    assert a[-1]["figures"]["llm.ttft"]["count"] == 3
    assert b[-1]["turns"] == 3


def test_records_from_a_job_process_reach_the_cli_process_intact() -> None:
    w = ListWriter()
    p = Pipeline([w])
    relay = RelayServer(p)
    child = textwrap.dedent(f"""
        from lkmetrics.agent.relay import RelayWriter
        from lkmetrics.pipeline import Pipeline
        p = Pipeline([RelayWriter({relay.path!r})], summarise=False)
        for i in range(200):
            p.put("job-1", {{"kind": "llm", "ttft": 0.25, "duration": 1.0, "text": "é" * i}})
        p.end_session("job-1")
        p.close()
    """)
    subprocess.run([sys.executable, "-c", child], check=True, env=subprocess_env(), timeout=60)
    relay.close()
    p.close()
    assert [r["seq"] for r in w.records] == list(range(1, 202))
    assert [len(r["text"]) for r in w.records[:-1]] == list(range(200))
    summary = w.records[-1]
    assert summary["kind"] == "summary" and summary["figures"]["llm.ttft"]["count"] == 200


def test_table_view_hides_vad_unless_asked_and_shows_other_kinds() -> None:
    import io

    from rich.console import Console

    from lkmetrics.render.live import TableWriter

    vad = {"kind": "vad", "type": "vad_metrics", "inference_count": 10,
           "inference_duration_total": 0.01, "idle_time": 0.2}
    realtime = {"kind": "realtime", "type": "realtime_model_metrics", "ttft": 0.42,
                "input_tokens": 12, "metadata": {"model_name": "gpt-realtime",
                                                  "model_provider": "openai"}}
    for show, expect_vad in (((), False), (("vad",), True)):
        buf = io.StringIO()
        writer = TableWriter(Console(file=buf, width=120), show)
        writer.write(vad)
        writer.write(realtime)
        text = buf.getvalue()
        assert ("VAD 10 inferences" in text) is expect_vad
        assert "realtime (openai/gpt-realtime): ttft=0.42 input_tokens=12" in text


def test_session_record_never_carries_url_credentials() -> None:
    from lkmetrics.agent.server import session_info
    from lkmetrics.config.settings import AgentSettings

    info = session_info(AgentSettings(llm_base_url="http://user:s3cret@127.0.0.1:8080/v1"))
    assert info["llm_base_url"] == "http://127.0.0.1:8080/v1"
