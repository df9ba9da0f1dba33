"""Issue 8, arguments, files, secrets and semantics: one line `Error: ...`, never a traceback.

Table-driven per command family; each row once made lkmetrics print a traceback, allocate
gigabytes, echo a password, or report a budget wrongly.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lkmetrics.cli import app
from lkmetrics.store import Store
from tests.helpers.common import subprocess_env
from tests.helpers.store import session_records

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, *needles: str, exit_code: int = 2) -> None:
    assert code == exit_code, output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def store(home: Path) -> Path:
    db = home / "metrics.db"
    with Store.open(db) as s:
        s.insert(session_records("s_one", turns=3))
    return db


# -- store commands: bounds where an argument reaches a date or SQLite ----------------------

BAD_SESSION = os.fsdecode(b"s_\xff\xfe")  # argv bytes that are not UTF-8 (surrogateescape)


@pytest.mark.parametrize(("args", "needles"), [
    (["report", "--since", "99999-01-01"], ["--since expects"]),
    (["report", BAD_SESSION], ["not valid UTF-8"]),
    (["export", BAD_SESSION], ["not valid UTF-8"]),
    (["compare", BAD_SESSION, "s_one"], ["not valid UTF-8"]),
])
def test_store_arguments_are_usage_errors(store: Path, args: list[str], needles: list[str]
                                          ) -> None:
    code, out = run(*args)
    assert_one_line_error(code, out, *needles)


def test_since_before_1970_reports_everything(store: Path) -> None:
    code, out = run("report", "--since", "99999999999d")
    assert code == 0 and "Traceback" not in out, out


@pytest.mark.parametrize("n", ["9223372036854775808", "99999999999", "-5"])
def test_sessions_limit_beyond_any_store_shows_all(store: Path, n: str) -> None:
    code, out = run("sessions", "-n", n)
    assert code == 0, out
    assert "s_one" in out


# -- agent options: validated before LiveKit loads ------------------------------------------

def _wav(path: Path, rate: int, channels: int = 1, samples: int = 16) -> Path:
    data = b"\0\0" * samples * channels
    byte_rate = min(rate * 2 * channels, 2**32 - 1)
    fmt = struct.pack("<HHIIHH", 1, channels, min(rate, 2**32 - 1), byte_rate, 2 * channels, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " +
                     struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


@pytest.mark.parametrize(("args", "needles"), [
    (["simulate", "--turns", "100000000000"], ["--turns must be from 1 to 100,000"]),
    (["simulate", "--timeout", "nan"], ["--timeout must be above 0"]),
    (["simulate", "--timeout", "inf"], ["--timeout must be above 0"]),
    (["simulate", "--pause", "nan"], ["--pause at least 0"]),
    (["console", "--llm-base-url", "http://host name/v1"], ["space"]),
    (["console", "--llm-base-url", "http:///v1"], ["must name a host"]),
    (["console", "--llm-base-url", "http://host:99999/v1"], ["--llm-base-url"]),
    (["console", "--llm-base-url", "ftp://user:PASSWORD@host/v1"], ["ftp://***@host/v1"]),
    (["connect", "--room", "r", "--url", "foo://user:PASSWORD@host"], ["foo://***@host"]),
    (["connect", "--room", "r", "--url", "wss://"], ["must name a host"]),
])
def test_agent_arguments_are_usage_errors(args: list[str], needles: list[str]) -> None:
    code, out = run(*args)
    assert_one_line_error(code, out, *needles)
    assert "PASSWORD" not in out


def test_wav_header_claiming_1_hz_is_refused(tmp_path: Path) -> None:
    from lkmetrics.errors import UsageError
    from lkmetrics.local.speech import read_wav_pcm16_mono

    for rate in (1, 3999, 192_001, 2**32 - 1):
        with pytest.raises(UsageError, match="sample rate"):
            read_wav_pcm16_mono(_wav(tmp_path / f"r{rate}.wav", rate), 16000)
    with pytest.raises(UsageError, match="broken WAV header"):
        read_wav_pcm16_mono(_wav(tmp_path / "c.wav", 16000, channels=0), 16000)
    assert read_wav_pcm16_mono(_wav(tmp_path / "ok.wav", 8000, samples=800), 16000).size == 1600


def test_wav_with_1_hz_rate_through_simulate_is_one_line(tmp_path: Path) -> None:
    code, out = run("simulate", "--say", str(_wav(tmp_path / "bad.wav", 1)), "--stt", "none",
                    "--llm-base-url", "http://127.0.0.1:9/v1", "--tts", "local", "--no-record")
    assert_one_line_error(code, out, "sample rate of 1 Hz")


@pytest.mark.parametrize("where", ["--env-file", "./.env"])
def test_binary_env_file_is_one_line(tmp_path: Path, where: str) -> None:
    env = tmp_path / ("bin.env" if where == "--env-file" else ".env")
    env.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00LIVEKIT")
    args = ["console", "--env-file", str(env)] if where == "--env-file" else ["console"]
    code, out = run(*args)
    assert_one_line_error(code, out, "not a text file")


# -- secrets ------------------------------------------------------------------------------

def test_redact_masks_userinfo_anywhere() -> None:
    from lkmetrics.safety import redact

    text = "cannot reach https://me:hunter2@example.com/v1 nor wss://tok@lk.example"
    assert redact(text) == "cannot reach https://***@example.com/v1 nor wss://***@lk.example"


def test_llama_child_environment_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from lkmetrics.local.llm_server import child_env

    for var in ("LIVEKIT_API_SECRET", "LIVEKIT_API_KEY", "OPENAI_API_KEY", "DEEPGRAM_API_KEY"):
        monkeypatch.setenv(var, "s3cret-value")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = child_env()
    assert "s3cret-value" not in env.values()
    assert env["OMP_NUM_THREADS"] == "2" and env["PATH"] == os.environ["PATH"]


# -- settings reach job processes without the 128 KiB limit of one environment string -------

def test_long_instructions_reach_a_child_process(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lkmetrics.config.settings import SETTINGS_ENV, AgentSettings

    settings = AgentSettings(instructions="x" * 300_000)
    path = settings.to_env(str(tmp_path))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    env = subprocess_env(**{SETTINGS_ENV: path})
    code = ("from lkmetrics.config.settings import AgentSettings; "
            "print(len(AgentSettings.from_env().instructions))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "300000"


def test_relay_close_removes_its_temp_dir_with_the_settings() -> None:
    from lkmetrics.agent.relay import RelayServer
    from lkmetrics.config.settings import AgentSettings
    from lkmetrics.pipeline import Pipeline

    relay = RelayServer(Pipeline([], summarise=False))
    AgentSettings().to_env(relay.directory)
    assert oct(os.stat(relay.directory).st_mode & 0o777) == "0o700"
    relay.close()
    assert not os.path.exists(relay.directory)


# -- budgets: a floor for a figure where higher is better -----------------------------------

def test_decode_rate_budget_is_a_floor(store: Path) -> None:
    # the synthetic session's decode rates are a few dozen tok/s
    code, out = run("report", "--format", "json")
    figures = json.loads(out.splitlines()[0])["figures"]
    p50 = next(f["p50"] for f in figures if f["figure"] == "llm.decode_rate")
    code, out = run("report", "--fail-over", f"llm.decode_rate.p50={p50 * 0.5:.3f}")
    assert code == 0, out
    code, out = run("report", "--fail-over", f"llm.decode_rate.p50={p50 * 2:.3f}")
    assert code == 1 and "llm.decode_rate.p50 = " in out and " < " in out, out
    code, out = run("report", "--fail-over", "e2e.p50=1ms")  # a time: still a ceiling
    assert code == 1 and " > " in out, out


@pytest.mark.parametrize("argv", [["sessions"], ["report"], ["prices"], ["export"],
                                  ["bench", "llm", "--llm", "x/m", "--llm-base-url",
                                   "http://127.0.0.1:9/v1", "--no-record"]])
def test_a_format_env_that_is_no_format_is_refused_by_every_command(
        argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LKMETRICS_FORMAT", "xml")
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: LKMETRICS_FORMAT='xml' is not an output format")
    assert len(result.stderr.splitlines()) == 1
