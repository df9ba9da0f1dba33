"""Fleet view without LiveKit: which record values feed which series and labels, the
exposition promtool accepts, and bad input refused before anything starts."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import urllib.request
from typing import Any

import pytest

from lkmetrics.errors import UsageError
from lkmetrics.fleet import (
    LATENCY_BUCKETS,
    OtlpWriter,
    PrometheusWriter,
    budget_thresholds,
    latency_buckets,
    open_fleet_writers,
)
from lkmetrics.fleet.otlp import signal_url
from lkmetrics.fleet.series import MAX_TOOLS, Observer, split_label
from tests.helpers.fleet import free_port
from tests.helpers.store import session_records

pytestmark = pytest.mark.timeout(60)


def observations(records: Any) -> list[Any]:
    obs = Observer()
    return [o for r in records for o in obs.observe(r)]


def test_component_records_are_labelled_with_their_own_model() -> None:
    recs = list(session_records("s_a", turns=1, llm="openai/gpt-4o", tts="cartesia/sonic-3",
                                stt="deepgram/nova-3"))
    by_key = {o.key: (o.model, o.provider) for o in observations(recs)}
    assert by_key["llm.ttft"] == ("gpt-4o", "openai")
    assert by_key["tts.ttfb"] == ("sonic-3", "cartesia")
    assert by_key["stt.duration"] == ("nova-3", "deepgram")
    # turn and eou records carry no model: they take the session's LLM
    assert by_key["turn.e2e"] == ("gpt-4o", "openai")
    assert by_key["eou.delay"] == ("gpt-4o", "openai")
    assert by_key["sessions"] == ("gpt-4o", "openai")


def test_livekit_inference_names_split_on_the_first_slash() -> None:
    # LiveKit Inference reports provider "livekit" and the name "openai/gpt-4.1-mini"
    rec = {"kind": "llm", "session_id": "s", "ttft": 0.3, "duration": 0.9,
           "metadata": {"model_name": "openai/gpt-4.1-mini", "model_provider": "livekit"}}
    (o, *_) = observations([rec])
    assert (o.model, o.provider) == ("gpt-4.1-mini", "openai")
    assert split_label("meta/llama-3/70b") == ("llama-3/70b", "meta")
    assert split_label("local") == ("local", "unknown")
    assert split_label(None) == ("unknown", "unknown")


def test_a_turn_of_an_unknown_session_is_labelled_unknown_and_summaries_forget() -> None:
    obs = Observer(max_sessions=2)
    for sid in ("s1", "s2", "s3"):
        list(obs.observe({"kind": "session", "session_id": sid, "llm": f"p/{sid}"}))
    assert obs.session_labels("s1") == ("unknown", "unknown")  # oldest dropped: bounded
    assert obs.session_labels("s3") == ("s3", "p")
    list(obs.observe({"kind": "summary", "session_id": "s3"}))
    assert obs.session_labels("s3") == ("unknown", "unknown")


def test_values_that_livekit_did_not_measure_are_skipped() -> None:
    recs = [
        {"kind": "llm", "session_id": "s", "ttft": -1.0, "duration": 0.5},
        {"kind": "stt", "session_id": "s", "duration": 0.0, "streamed": True,
         "audio_duration": 2.0},
        {"kind": "turn", "session_id": "s", "e2e_latency": None, "interrupted": True},
        {"kind": "turn", "session_id": "s", "e2e_latency": 0.9, "heard_latency": 1.1},
    ]
    keys = [(o.key, o.value) for o in observations(recs)]
    assert ("llm.ttft", -1.0) not in keys and ("llm.duration", 0.5) in keys
    assert not any(k == "stt.duration" for k, _ in keys)
    assert ("stt.audio", 2.0) in keys
    assert [k for k, _ in keys].count("turns") == 2
    assert [k for k, _ in keys].count("turns.interrupted") == 1
    assert ("turn.e2e", 0.9) in keys and ("turn.heard", 1.1) in keys


def test_budget_thresholds_become_buckets() -> None:
    limits = budget_thresholds(["e2e.p95=1.25s", "llm.ttft.p50=450ms",
                                "llm.decode_rate.p50=40tok/s"])
    assert limits == [1.25, 0.45]  # the rate budget is not a time: no bucket
    buckets = latency_buckets(limits)
    assert set(LATENCY_BUCKETS) < set(buckets)
    assert 1.25 in buckets and 0.45 in buckets and list(buckets) == sorted(set(buckets))
    w = PrometheusWriter(limits)
    w.write({"kind": "session", "session_id": "s", "llm": "openai/gpt-4o"})
    w.write({"kind": "turn", "session_id": "s", "e2e_latency": 1.25})
    text = w.exposition().decode()
    assert ('lkmetrics_turn_e2e_latency_seconds_bucket{le="1.25",model="gpt-4o",'
            'provider="openai"} 1.0') in text


def test_exposition_passes_promtool_and_has_bounded_labels() -> None:
    w = PrometheusWriter([1.25])
    for sid, llm in (("s_7f3a9c01d2e4", "openai/gpt-4.1-mini"),
                     ("s_0b5e8d7c6a91", "openai/gpt-4o")):
        for r in session_records(sid, turns=4, llm=llm):
            w.write(r)
    text = w.exposition().decode()
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    check = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    labels = set()
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        inner = line[line.index("{") + 1: line.index("}")]
        labels |= {part.split("=", 1)[0] for part in inner.split('",') if part}
    assert labels == {"model", "provider", "kind", "le"}
    assert "s_7f3a9c01d2e4" not in text and "s_0b5e8d7c6a91" not in text
    for name in ("lkmetrics_turns_total", "lkmetrics_sessions_total",
                 "lkmetrics_interrupted_turns_total", "lkmetrics_llm_tokens_total",
                 "lkmetrics_tts_characters_total", "lkmetrics_stt_audio_seconds_total"):
        assert f"# TYPE {name} counter" in text or f"# TYPE {name.removesuffix('_total')} counter" \
            in text, name
    assert 'lkmetrics_interrupted_turns_total{model="gpt-4o",provider="openai"} 0.0' in text
    assert 'kind="cached"' in text


def test_the_endpoint_serves_the_registry_on_loopback() -> None:
    (w,) = open_fleet_writers(prometheus_port=0, otlp_url=None)
    assert isinstance(w, PrometheusWriter) and w.port
    try:
        w.write({"kind": "session", "session_id": "s", "llm": "openai/gpt-4o"})
        with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert 'lkmetrics_sessions_total{model="gpt-4o",provider="openai"} 1.0' in body
    finally:
        w.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=2)


def test_a_port_in_use_is_a_usage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match=f"--prometheus-port {port} is already in use") as e:
            open_fleet_writers(prometheus_port=port, otlp_url=None)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("port, message", [
    (80, "privileged port"), (1023, "privileged port"), (70000, "within 1024-65535"),
    (-1, "within 1024-65535"),
])
def test_privileged_and_impossible_ports_are_refused(port: int, message: str) -> None:
    # refused even as root, where binding port 80 would work: a worker should not need it
    with pytest.raises(UsageError, match=message) as e:
        open_fleet_writers(prometheus_port=port, otlp_url="http://127.0.0.1:4318")
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


@pytest.mark.parametrize("host", ["192.0.2.1", "no-such-host.invalid"])
def test_a_host_that_cannot_be_listened_on_is_a_usage_error(host: str) -> None:
    with pytest.raises(UsageError, match="--prometheus-host") as e:
        open_fleet_writers(prometheus_host=host, prometheus_port=free_port(), otlp_url=None)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("url", ["localhost:4318", "ftp://collector:4318", "http://"])
def test_a_bad_otlp_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="--otlp expects") as e:
        open_fleet_writers(prometheus_port=None, otlp_url=url)
    assert e.value.exit_code == 2


def test_otlp_falls_back_to_the_standard_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_fleet_writers(prometheus_port=None, otlp_url=None) == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    (w,) = open_fleet_writers(prometheus_port=None, otlp_url=None, report=lambda m: None)
    assert isinstance(w, OtlpWriter)
    w.close()


def test_signal_urls_follow_the_otlp_endpoint_rules() -> None:
    assert signal_url("http://c:4318", "metrics") == "http://c:4318/v1/metrics"
    assert signal_url("http://c:4318/", "traces") == "http://c:4318/v1/traces"
    assert signal_url("https://c/otlp", "metrics") == "https://c/otlp/v1/metrics"
    assert signal_url("http://c:4318/v1/metrics", "traces") == "http://c:4318/v1/traces"


def test_importing_the_fleet_package_loads_no_exporter_or_livekit() -> None:
    import sys

    code = ("import sys, lkmetrics.fleet; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('livekit', 'opentelemetry', 'prometheus_client')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def _console(*args: str) -> Any:
    from typer.testing import CliRunner

    from lkmetrics.cli import app

    return CliRunner().invoke(app, ["console", "--stt", "none", "--tts", "none", "--no-record",
                                    "--llm-base-url", "http://127.0.0.1:9/v1", *args])


def test_the_command_refuses_a_privileged_port_before_livekit_starts() -> None:
    result = _console("--prometheus-port", "80")
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "privileged" in lines[0] and "Traceback" not in result.output


def test_the_command_refuses_a_port_in_use_before_livekit_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _console("--prometheus-port", str(port), "--format", "json")
    assert result.exit_code == 2, result.output
    assert f"{port}" in result.output and "Traceback" not in result.output
    assert "LiveKit" not in result.output.replace("LiveKit server", "")


def test_the_command_refuses_a_bad_otlp_url() -> None:
    result = _console("--otlp", "ftp://collector")
    assert result.exit_code == 2 and "--otlp" in result.output


def test_one_endpoint_covers_every_job_process_of_a_worker() -> None:
    """run/dev: each job is a child process whose records reach the worker's pipeline through
    the relay; the worker's one /metrics shows every job's turns."""
    import sys
    import textwrap

    from lkmetrics.agent.relay import RelayServer
    from lkmetrics.pipeline import Pipeline
    from tests.helpers.common import subprocess_env

    (prom,) = open_fleet_writers(prometheus_port=0, otlp_url=None)
    assert isinstance(prom, PrometheusWriter)
    pipeline = Pipeline([prom])
    relay = RelayServer(pipeline)
    jobs = []
    for job, turns in (("job-a", 5), ("job-b", 3)):
        child = textwrap.dedent(f"""
            from lkmetrics.pipeline import Pipeline
            from lkmetrics.agent.relay import RelayWriter
            relay = RelayWriter({relay.path!r})
            p = Pipeline([relay], summarise=False, on_session_end=relay.end_session)
            p.put({job!r}, {{"kind": "session", "llm": "openai/gpt-4o"}})
            for i in range({turns}):
                p.put({job!r}, {{"kind": "turn", "e2e_latency": 0.5 + i / 10}})
            p.end_session({job!r})
            p.close()
        """)
        jobs.append(subprocess.Popen([sys.executable, "-c", child], env=subprocess_env()))
    try:
        assert [j.wait(60) for j in jobs] == [0, 0]
        relay.close()
        assert pipeline.flush(10)
        with urllib.request.urlopen(f"http://127.0.0.1:{prom.port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert 'lkmetrics_turns_total{model="gpt-4o",provider="openai"} 8.0' in body
        assert 'lkmetrics_sessions_total{model="gpt-4o",provider="openai"} 2.0' in body
        assert ('lkmetrics_turn_e2e_latency_seconds_count{model="gpt-4o",provider="openai"} 8.0'
                in body)
    finally:
        pipeline.close()


def test_cost_and_local_models_are_labelled_by_the_one_model_identity() -> None:
    obs = Observer()
    session = {"kind": "session", "session_id": "s", "llm": "local",
               "llm_model": "SmolLM2-135M-Instruct.Q4_1", "stt": "deepgram/nova-3",
               "tts": "cartesia/sonic-3"}
    list(obs.observe(session))
    llm = {"kind": "llm", "session_id": "s", "ttft": 0.2, "duration": 0.5,
           "metadata": {"model_name": "SmolLM2-135M-Instruct.Q4_1",
                        "model_provider": "127.0.0.1:40307"}}
    labels = {(o.model, o.provider) for o in obs.observe(llm)}
    assert labels == {("smollm2-135m-instruct", "local")}  # never the server's port
    turn = {"kind": "turn", "session_id": "s", "e2e_latency": 1.0,
            "cost": {"total": 0.003, "llm": 0.0, "stt": 0.001, "tts": 0.002}}
    costs = {(o.model, o.provider): o.value for o in obs.observe(turn) if o.key == "cost"}
    assert costs == {("nova-3", "deepgram"): 0.001, ("sonic-3", "cartesia"): 0.002}


def test_an_otlp_url_with_a_space_is_refused_and_its_password_never_shown() -> None:
    with pytest.raises(UsageError) as e:
        open_fleet_writers(prometheus_port=None, otlp_url="http://user:SECRETPW@host name")
    assert e.value.exit_code == 2 and "SECRETPW" not in str(e.value)
    with pytest.raises(UsageError) as e:
        open_fleet_writers(prometheus_port=None, otlp_url="ftp://user:SECRETPW@host")
    assert "SECRETPW" not in str(e.value)


def test_tool_calls_feed_the_tool_histogram_by_tool_name_bounded() -> None:
    w = PrometheusWriter()
    for r in session_records("s_tools", turns=1, llm="openai/gpt-4.1-mini"):
        w.write(r)
        if r["kind"] == "session":
            for seconds in (0.25, 0.75):
                w.write({"kind": "tool", "session_id": "s_tools", "name": "lookup_weather",
                         "duration": seconds, "ok": True})
            for i in range(MAX_TOOLS + 5):  # a runaway set of names shares one label
                w.write({"kind": "tool", "session_id": "s_tools", "name": f"t{i}",
                         "duration": 0.1, "ok": True})
    text = w.exposition().decode()
    check = subprocess.run([str(shutil.which("promtool")), "check", "metrics"], input=text,
                           text=True, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    labels = 'model="gpt-4.1-mini",provider="openai",tool="lookup_weather"'
    assert f"lkmetrics_tool_duration_seconds_count{{{labels}}} 2.0" in text
    assert f"lkmetrics_tool_duration_seconds_sum{{{labels}}} 1.0" in text
    assert f'lkmetrics_tool_duration_seconds_bucket{{le="0.5",{labels}}} 1.0' in text
    tools = set(re.findall(r'lkmetrics_tool_duration_seconds_count\{.*tool="([^"]+)"', text))
    assert len(tools) == MAX_TOOLS + 1 and "other" in tools and "t0" in tools
    assert 'tool="other"} 6.0' in text  # the 6 names past the first MAX_TOOLS
