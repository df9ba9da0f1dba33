"""OTLP/HTTP export checked by a local receiver that decodes the protobuf (opentelemetry-proto):
names, units, bucket bounds and counts against the records; and a collector that refuses or
hangs neither stops nor slows the pipeline, and is reported once."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from lkmetrics.fleet import OtlpWriter, latency_buckets
from lkmetrics.pipeline import Pipeline
from lkmetrics.records import Record
from tests.helpers.common import ListWriter
from tests.helpers.fleet import HangingServer, OtlpReceiver, free_port, wait_for
from tests.helpers.store import session_records

pytestmark = pytest.mark.timeout(120)

BUDGET = 0.45

EXPECTED = {  # name -> (unit, histogram?)
    "gen_ai.client.operation.duration": ("s", True),
    "gen_ai.client.operation.time_to_first_chunk": ("s", True),
    "gen_ai.client.token.usage": ("{token}", True),
    "lkmetrics.llm.cached_tokens": ("{token}", False),
    "lkmetrics.turn.e2e_latency": ("s", True),
    "lkmetrics.tts.ttfb": ("s", True),
    "lkmetrics.stt.duration": ("s", True),
    "lkmetrics.eou.delay": ("s", True),
    "lkmetrics.eou.transcription_delay": ("s", True),
    "lkmetrics.tts.characters": ("{character}", False),
    "lkmetrics.stt.audio_duration": ("s", False),
    "lkmetrics.turns": ("{turn}", False),
    "lkmetrics.sessions": ("{session}", False),
    "lkmetrics.turns.interrupted": ("{turn}", False),
    "lkmetrics.errors": ("{error}", False),
}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    yield r
    r.close()


def attrs(point: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in point.attributes}


def histogram_points(metric: Any) -> dict[tuple[tuple[str, str], ...], Any]:
    return {tuple(sorted(attrs(p).items())): p for p in metric.histogram.data_points}


def sum_points(metric: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(attrs(p).items())): (p.as_double or float(p.as_int))
            for p in metric.sum.data_points}


def two_sessions() -> list[Record]:
    return [*session_records("s_1a2b3c4d5e6f", turns=5, seed=3, llm="openai/gpt-4.1-mini"),
            *session_records("s_6f5e4d3c2b1a", turns=3, seed=4, llm="openai/gpt-4o")]


def test_otlp_metrics_match_the_records(receiver: OtlpReceiver) -> None:
    messages: list[str] = []
    writer = OtlpWriter(receiver.url, budgets=[BUDGET], interval=60, report=messages.append)
    records = two_sessions()
    for r in records:
        writer.write(r)
    assert writer.flush()
    writer.close()
    assert messages == [] and writer.health.failures == 0
    assert set(receiver.paths) == {"/v1/metrics"}
    metrics = receiver.latest_metrics()
    assert set(EXPECTED) <= set(metrics), set(EXPECTED) - set(metrics)
    for name, (unit, histogram) in EXPECTED.items():
        m = metrics[name]
        assert m.unit == unit, name
        assert m.WhichOneof("data") == ("histogram" if histogram else "sum"), name

    resource = receiver.metrics[-1].resource_metrics[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] \
        == "lkmetrics"

    # LLM calls: GenAI attributes, one point per model, counts and sums as recorded
    llms = [r for r in records if r["kind"] == "llm"]
    duration = histogram_points(metrics["gen_ai.client.operation.duration"])
    for model, n in Counter(r["metadata"]["model_name"] for r in llms).items():
        key = (("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
               ("gen_ai.request.model", model))
        point = duration[key]
        assert point.count == n
        assert point.sum == pytest.approx(sum(r["duration"] for r in llms
                                              if r["metadata"]["model_name"] == model))
        assert list(point.explicit_bounds) == list(latency_buckets([BUDGET]))
        assert BUDGET in point.explicit_bounds
        assert sum(point.bucket_counts) == n
    ttft = metrics["gen_ai.client.operation.time_to_first_chunk"]
    assert sum(p.count for p in ttft.histogram.data_points) == len(llms)

    tokens: dict[str, float] = defaultdict(float)
    for p in metrics["gen_ai.client.token.usage"].histogram.data_points:
        tokens[attrs(p)["gen_ai.token.type"]] += p.sum
        assert list(p.explicit_bounds)[:3] == [1, 4, 16]
    assert tokens == {"input": sum(r["prompt_tokens"] for r in llms),
                      "output": sum(r["completion_tokens"] for r in llms)}

    # turns take the session's LLM as labels
    turns = sum_points(metrics["lkmetrics.turns"])
    assert turns == {(("model", "gpt-4.1-mini"), ("provider", "openai")): 5.0,
                     (("model", "gpt-4o"), ("provider", "openai")): 3.0}
    assert metrics["lkmetrics.turns"].sum.is_monotonic
    e2e = histogram_points(metrics["lkmetrics.turn.e2e_latency"])
    assert sum(p.count for p in e2e.values()) == 8
    assert sum(sum_points(metrics["lkmetrics.turns.interrupted"]).values()) == 0
    chars = sum(r["characters_count"] for r in records if r["kind"] == "tts")
    assert sum(sum_points(metrics["lkmetrics.tts.characters"]).values()) == chars


@pytest.mark.parametrize("collector", ["refused", "hanging"])
def test_an_unreachable_collector_is_reported_once_and_does_not_block(collector: str) -> None:
    hanging = HangingServer() if collector == "hanging" else None
    url = hanging.url if hanging else f"http://127.0.0.1:{free_port()}"
    messages: list[str] = []
    writer = OtlpWriter(url, interval=0.2, timeout=1.0, report=messages.append)
    lists = ListWriter()
    pipeline = Pipeline([lists, writer])
    try:
        first = list(session_records("s_000000000001", turns=2))
        for r in first:
            pipeline.put(r["session_id"], r)
        if hanging:  # an export is now stuck on a connection that never answers
            wait_for(lambda: hanging.conns, 10, "the exporter to connect")
        else:
            wait_for(lambda: writer.health.failures, 10, "a failed export")
        # ... and the pipeline thread still takes records at its own pace meanwhile
        records = [r for i in range(2, 60) for r in session_records(f"s_{i:012x}", turns=5,
                                                                      seed=i)]
        t0 = time.perf_counter()
        for r in records:
            pipeline.put(r["session_id"], r)
        assert pipeline.flush(10)
        took = time.perf_counter() - t0
        wait_for(lambda: writer.health.failures >= 2, 15, "several failed exports")
        assert len(lists.records) == len(first) + len(records)
        assert not pipeline.errors
        t0 = time.perf_counter()
        pipeline.close()
        closing = time.perf_counter() - t0
    finally:
        if hanging:
            hanging.close()
    print(f"{collector}: {len(records)} records in {took * 1000:.0f} ms while exports failed; "
          f"close in {closing:.2f} s; {writer.health.failures} failed exports")
    assert len(messages) == 1, messages
    assert url in messages[0] and "keeps running" in messages[0]
    reason = "connection refused" if collector == "refused" else "no answer"
    assert f"failed ({reason}" in messages[0], messages[0]
    assert closing < 4.0  # a dead collector costs at most about one export timeout (1 s)


def test_a_real_voice_session_sends_metrics_and_livekits_spans(receiver: OtlpReceiver,
                                                               llm_server: Any) -> None:
    import asyncio

    from lkmetrics.fleet import start_livekit_tracing
    from tests.helpers.fleet import run_voice_session

    messages: list[str] = []
    stop_tracing = start_livekit_tracing(receiver.url, report=messages.append)
    writer = OtlpWriter(receiver.url, interval=60, report=messages.append)
    try:
        questions = ["What is the capital of France?", "And of Spain?"]
        records, results = asyncio.run(run_voice_session(llm_server, questions, [writer]))
    finally:
        stop_tracing()
    assert [r.ok for r in results] == [True, True]
    assert messages == []
    metrics = receiver.latest_metrics()
    llms = [r for r in records if r["kind"] == "llm"]
    ttft = metrics["gen_ai.client.operation.time_to_first_chunk"].histogram.data_points
    assert [attrs(p)["gen_ai.request.model"] for p in ttft] == ["test-model"]
    assert ttft[0].count == len(llms) == 2
    assert ttft[0].sum == pytest.approx(sum(r["ttft"] for r in llms))
    turns = sum_points(metrics["lkmetrics.turns"])
    # the session's LLM by its identity: the --llm-base-url server's host, never its port
    assert turns == {(("model", "test-model"), ("provider", "127.0.0.1")): 2.0}
    # LiveKit's own spans reached the same collector
    names = receiver.span_names()
    assert {"agent_session", "llm_node", "tts_node"} <= names, names
