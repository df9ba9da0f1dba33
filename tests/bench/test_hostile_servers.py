"""`bench llm` against hostile servers (issue 22): a 401 echoing the request's credentials, a
stream that never ends, a malformed stream, impossible usage. Each gives one clear cause, the
right exit code, the JSON document, no secret anywhere and no record lost."""

from __future__ import annotations

import base64
import json
import os
import stat
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
