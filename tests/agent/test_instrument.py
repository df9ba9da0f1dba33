"""``lkmetrics.instrument(session)``: an agent run by LiveKit's own CLI records itself; several
job processes append to one file and one store at once; bad calls get one clear error."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

import lkmetrics
from lkmetrics.errors import UsageError
from tests.helpers.common import API_KEY, API_SECRET, ROOT, TESTS, subprocess_env
from tests.helpers.llm_server import LLMServer

AGENT = ROOT / "examples" / "agents" / "instrumented.py"
WRITER = TESTS / "helpers" / "instrument_writer.py"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TTFT = 0.3


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def store_export(db: Path, session_ids: list[str]) -> list[dict[str, Any]]:
    from lkmetrics.store import Store
    from lkmetrics.store.export import export_jsonl

    out = io.StringIO()
    store = Store.open(db)
    try:
        export_jsonl(store, session_ids, out)
    finally:
        store.close()
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.timeout(180)
def test_livekit_console_text_writes_ttft_and_summary(llm_server: LLMServer, tmp_path: Path,
                                                      home: Path) -> None:
    """The issue's acceptance: LiveKit's own ``console --text`` on an agent calling
    ``instrument(session, output=F)`` writes the LLM's TTFT and the closing summary to F."""
    from livekit.agents.metrics import LLMMetrics

    llm_server.script.ttft = TTFT
    out = tmp_path / "agent-metrics.jsonl"
    env = subprocess_env(LIVEKIT_INFERENCE_URL=llm_server.url, LIVEKIT_API_KEY=API_KEY,
                         LIVEKIT_API_SECRET=API_SECRET, AGENT_METRICS_FILE=str(out))
    child = pexpect.spawn(sys.executable, [str(AGENT), "console", "--text"], env=env,
                          encoding="utf-8", codec_errors="replace", timeout=90,
                          dimensions=(50, 120))
    child.expect("Type to talk")
    child.send("What is the capital of France?\r")
    child.expect("capital of France")  # the reply, printed by LiveKit's console
    deadline = time.monotonic() + 10  # the turn's records reach the file from the thread
    while not ('"kind":"turn"' in (out.read_text() if out.exists() else "")
               or time.monotonic() > deadline):
        time.sleep(0.05)
    child.sendintr()  # Ctrl-C: LiveKit's console shuts down, the summary must still come
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0, ANSI.sub("", child.before or "")

    records = read_jsonl(out)
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "session" and kinds[-1] == "summary", kinds
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[0]["command"] == "instrument"
    assert records[0]["llm"] == "openai/gpt-4.1-mini"
    llm = [r for r in records if r["kind"] == "llm"]
    assert len(llm) == 1
    metric = LLMMetrics.model_validate(llm[0])  # LiveKit's own shape, whole
    assert TTFT <= metric.ttft < TTFT + 0.1
    turn = next(r for r in records if r["kind"] == "turn")
    assert turn["agent_text"] == llm_server.script.text
    assert TTFT <= turn["llm_node_ttft"] < TTFT + 0.1
    summary = records[-1]
    assert summary["figures"]["llm.ttft"]["count"] == 1
    assert summary["figures"]["llm.ttft"]["p50"] == pytest.approx(metric.ttft)
    assert any(r["kind"] == "usage" for r in records)
    assert llm_server.script.requests, "the LLM server was never called"
    # the same records in the default store, under the same session id
    assert store_export(home / "metrics.db", [records[0]["session_id"]]) == records


def test_many_processes_append_to_one_file_and_one_store(tmp_path: Path) -> None:
    """Real processes at once, each with its own pipeline on the same file and database: every
    line is whole JSON, every session's records are all there, in order, in both."""
    out, db = tmp_path / "shared.jsonl", tmp_path / "shared.db"
    processes, count, go = 4, 300, tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(WRITER), str(out), str(db), str(count),
                               str(go)], env=subprocess_env(), stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    time.sleep(0.5)  # let them all start up and wait
    go.touch()
    sids = []
    for p in procs:
        stdout, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        sids.append(stdout.strip())
    lines = out.read_text().splitlines()
    assert len(lines) == processes * (count + 2)  # session, the metrics, summary
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        record = json.loads(line)  # a torn or interleaved line would not parse
        by_session[record["session_id"]].append(record)
    assert sorted(by_session) == sorted(sids)
    for sid, records in by_session.items():
        assert [r["seq"] for r in records] == list(range(1, count + 3))
        assert [r["kind"] for r in records][::count + 1] == ["session", "summary"]
        assert records[-1]["figures"]["llm.ttft"]["count"] == count
        assert store_export(db, [sid]) == records
    # the processes really wrote at the same time: their lines alternate in the file
    order = [json.loads(line)["session_id"] for line in lines]
    switches = sum(a != b for a, b in zip(order, order[1:], strict=False))
    assert switches > 10 * processes, switches


@pytest.fixture
def session() -> Iterator[Any]:
    """A session on a loop of its own: an earlier test may have left this thread without a
    current event loop, and ``AgentSession()`` asks for one."""
    from livekit.agents import AgentSession

    loop = asyncio.new_event_loop()
    try:
        yield AgentSession(loop=loop)
    finally:
        loop.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"output": 3}, "output expects a file path"),
    ({"record": "yes"}, "record expects True or False"),
    ({"record": False}, "nothing to write with output=None and record=False"),
    ({"db": "x.db", "record": False}, "db is given but record=False"),
    ({"prometheus_port": 80}, "prometheus_port 80 is a privileged port"),
    ({"prometheus_port": "9464"}, "prometheus_port expects a port number"),
    ({"otlp": "ftp://collector"}, "otlp expects the http(s) URL"),
])
def test_bad_arguments_give_one_clear_error(session: Any, kwargs: dict[str, Any], message: str
                                            ) -> None:
    with pytest.raises(UsageError) as err:
        lkmetrics.instrument(session, **kwargs)
    assert str(err.value).startswith("instrument(): " + message), err.value
    assert "--" not in str(err.value)  # the function's words, not the CLI's flags
    lkmetrics.instrument(session, record=False, output="fine.jsonl")  # nothing was held


def test_a_directory_as_output_is_refused(session: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory; give a file path"):
        lkmetrics.instrument(session, output=tmp_path)


def test_not_a_session_is_refused() -> None:
    with pytest.raises(UsageError, match=r"expects the AgentSession .* \(got dict\)"):
        lkmetrics.instrument({})


def test_twice_on_one_session_is_refused(session: Any, tmp_path: Path) -> None:
    sid = lkmetrics.instrument(session, output=tmp_path / "a.jsonl")
    assert sid.startswith("s_")
    with pytest.raises(UsageError, match=f"already called on this AgentSession .*{sid}.*once"):
        lkmetrics.instrument(session, output=tmp_path / "b.jsonl")


def test_import_lkmetrics_loads_neither_livekit_nor_writers() -> None:
    code = ("import sys, lkmetrics; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('livekit', 'rich', 'typer', 'prometheus_client', 'opentelemetry', 'sqlite3') "
            "or (m.startswith('lkmetrics.') and m != 'lkmetrics.version')))")  # version: a constant
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(),
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


MULTIPROC_CHILD = """
import socket, sys
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from lkmetrics.agent.instrument import check_options, close_all, instrument_pipeline, release
from lkmetrics.records import metric_record, session_record

held = socket.socket()  # the worker's own endpoint, already listening on the port
held.bind(("127.0.0.1", 0))
held.listen()
port = held.getsockname()[1]
opts = check_options(output=None, db=None, record=False, prometheus_port=port,
                     prometheus_host="127.0.0.1", otlp=None)
shared = instrument_pipeline(opts)  # the port in use is no error in multiprocess mode
shared.pipeline.put("s_1", session_record({"kind": "session", "llm": "openai/gpt-4.1-mini"}))
shared.pipeline.put("s_1", metric_record({"type": "llm_metrics", "label": "x", "ttft": 0.25,
                                          "duration": 0.5, "timestamp": 1.0e9}))
release(shared)
close_all()
registry = CollectorRegistry()
MultiProcessCollector(registry)
sys.stdout.write(generate_latest(registry).decode())
"""


def test_prometheus_multiprocess_mode_leaves_the_port_to_livekits_worker(tmp_path: Path
                                                                          ) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (LiveKit's ``prometheus_multiproc_dir``), a job process
    whose port is already served writes its series to the shared directory instead."""
    directory = tmp_path / "prom"
    directory.mkdir()
    result = subprocess.run([sys.executable, "-c", MULTIPROC_CHILD], capture_output=True,
                            text=True, env=subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(directory)),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert list(directory.iterdir()), "no series were written to the directory"
    assert ('lkmetrics_llm_duration_seconds_count{model="gpt-4.1-mini",provider="openai"} 1.0'
            in result.stdout), result.stdout
    assert re.search(r"^lkmetrics_sessions_total\{.*\} 1\.0$", result.stdout, re.M), result.stdout
