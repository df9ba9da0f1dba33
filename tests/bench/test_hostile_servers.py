"""`bench llm` against hostile servers (issue 22): a 401 echoing the request's credentials, a
stream that never ends, a malformed stream, impossible usage. Each gives one clear cause, the
right exit code, the JSON document, no secret anywhere and no record lost."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lkmetrics.cli import app
from tests.helpers.llm_server import LLMServer, Script

pytestmark = pytest.mark.timeout(120)

KEY = "sk-live-0123456789abcdefSECRET"
USER, PASSWORD = "bob", "hunter2-pa55word"


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[LLMServer]:
    srv = LLMServer(Script(**getattr(request, "param", {})))
    yield srv
    srv.close()


def bench(url: str, *args: str, db: Path | None = None) -> Any:
    argv = ["bench", "llm", "--llm-base-url", url, "--llm", "x/test-model", "-n", "2",
            "--warmup", "0", *args]
    argv += ["--db", str(db)] if db is not None else ["--no-record"]
    return CliRunner().invoke(app, argv)


def forms_of_the_secrets() -> list[str]:
    """The key, the password and the encodings a server may echo them in."""
    return [KEY, PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode().rstrip("="),
            base64.b64encode(f":{KEY}".encode()).decode()[2:-2]]


@pytest.mark.parametrize("server", [{"status": 401}], indirect=True)
@pytest.mark.parametrize("fmt", ["table", "json"])
@pytest.mark.parametrize("userinfo", [False, True])
def test_a_401_echoing_the_credentials_leaks_them_nowhere(
        server: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str,
        userinfo: bool) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    url = server.url.replace("http://", f"http://{USER}:{PASSWORD}@") if userinfo else server.url
    db = tmp_path / "metrics.db"
    result = bench(url, "--format", fmt, db=db)
    assert result.exit_code == 1, result.output
    echoed = server.script.auth[0]
    assert echoed.split()[-1] in (forms_of_the_secrets()[2] + "=", KEY)  # the server got it
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("metrics.db*"))
    assert b"bench llm" in stored  # the runs were recorded ...
    for secret in forms_of_the_secrets():  # ... but no form of a secret anywhere
        assert secret not in result.stdout and secret not in result.stderr, secret
        assert secret.encode() not in stored, secret
    assert "401" in result.stderr and "***" in result.stderr
    if fmt == "json":
        doc = json.loads(result.stdout)
        assert "***" in doc["runs"][0]["first_error"]
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


@pytest.mark.parametrize("server", [{"drip": 0.2}], indirect=True)
def test_a_stream_that_never_ends_is_an_error_at_the_request_deadline(
        server: LLMServer) -> None:
    started = time.monotonic()
    result = bench(server.url, "--format", "json", "--request-timeout", "1.5",
                   "--workers", "1")
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)  # the JSON document is always written
    (run,) = doc["runs"]
    assert run["requests"] == 2 and run["errors"] == 2
    assert "1.5 s deadline" in run["first_error"] and "1 content chunk" in run["first_error"]
    assert 2 * 1.5 <= took < 20  # each request ran to its deadline, not forever
    assert "deadline" in result.stderr and result.stderr.count("Error:") == 1


def test_the_default_deadline_grows_with_max_tokens() -> None:
    from lkmetrics.bench.llm.core import make_config

    def deadline(max_tokens: int, given: float | None = None) -> float | None:
        return make_config(models=["x/m"], base_url="http://h/v1", requests=1,
                           concurrency=None, prompt="hi", prompts_file=None,
                           max_tokens=max_tokens, warmup=0, fail_over=None,
                           default_model="x/m", request_timeout=given).request_timeout

    assert deadline(128) == 30 + 0.25 * 128 and deadline(1000) == 30 + 0.25 * 1000
    assert deadline(128, 5.0) == 5.0


@pytest.mark.parametrize("server", [{"raw": b"data: {not json\n\n"}], indirect=True)
def test_a_malformed_stream_is_named_as_such(server: LLMServer) -> None:
    result = bench(server.url, "--format", "json", "--workers", "1")
    assert result.exit_code == 1, result.output
    first = json.loads(result.stdout)["runs"][0]["first_error"]
    assert first.startswith("malformed response stream from the server (JSONDecodeError"), first
    assert len(result.stderr.splitlines()) == 1 and "malformed response stream" in result.stderr


@pytest.mark.parametrize("server", [
    {"usage": {"prompt_tokens": -5, "completion_tokens": 8, "total_tokens": 3}},
    {"usage": {"prompt_tokens": 42, "completion_tokens": 2**62, "total_tokens": 2**62 + 42}},
], indirect=True, ids=["negative", "huge"])
def test_impossible_usage_keeps_the_record_with_the_field_invalid(
        server: LLMServer, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    result = bench(server.url, "--format", "json", "--workers", "1", db=db)
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert run["output_tokens"] == 2 * 8  # the chunks, not 2^62
    assert run["output_tokens_per_s"] < 1e6
    from tests.helpers.store import run as cli

    report = cli("report", "--db", str(db), "--include-bench", "--format", "json")
    figures = {f["figure"]: f for f in json.loads(report.stdout)["figures"]}
    assert figures["llm.ttft"]["count"] == 2  # every llm record kept, its timings counted
    budget = cli("report", "--db", str(db), "--include-bench", "--fail-over", "llm.ttft.p95=1ms")
    assert budget.exit_code == 1  # a budget is checked on them (and broken here)
    export = cli("export", "--db", str(db), "--format", "jsonl").stdout
    llm = [json.loads(line) for line in export.splitlines() if '"kind":"llm"' in line]
    assert len(llm) == 2
    usage = server.script.usage or {}
    bad = "prompt_tokens" if usage["prompt_tokens"] < 0 else "completion_tokens"
    for rec in llm:
        assert rec[bad] is None and "not a token count" in rec["invalid"][bad]
        assert rec["ttft"] > 0
