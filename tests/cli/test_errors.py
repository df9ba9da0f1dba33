"""Every bad input ends with one line saying what was wrong and how to fix it, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lkmetrics.cli import app
from tests.helpers.common import API_KEY, API_SECRET, subprocess_env

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_malformed_model() -> None:
    code, out = run("console", "--llm", "gpt4")
    assert_one_line_error(code, out, "--llm expects PROVIDER/MODEL", "openai/gpt-4.1-mini", "gpt4")


@pytest.mark.parametrize("opt", ["--stt", "--tts"])
def test_malformed_stt_tts(opt: str) -> None:
    code, out = run("console", opt, "nova3")
    assert_one_line_error(code, out, f"{opt} expects PROVIDER/MODEL", "'none'")


def test_unknown_format_before_and_after_command() -> None:
    assert_one_line_error(*run("--format", "yaml", "console"), "--format", "table, json, none")
    assert_one_line_error(*run("console", "--format", "xml"), "--format", "'xml'")


def test_missing_explicit_env_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    code, out = run("console", "--env-file", str(missing))
    assert_one_line_error(code, out, str(missing), "does not exist")


def test_missing_default_env_file_is_fine_and_reads_dotenv(tmp_path: Path) -> None:
    # no ./.env: the error is about credentials, not about the file
    code, out = run("console", "--llm", "openai/gpt-4.1-mini")
    assert_one_line_error(code, out, "LIVEKIT_API_KEY")
    # ./.env with a key but no secret: now the secret is what is missing
    (tmp_path / ".env").write_text(f"LIVEKIT_API_KEY={API_KEY}\n")
    code, out = run("console", "--llm", "openai/gpt-4.1-mini")
    assert_one_line_error(code, out, "LIVEKIT_API_SECRET", ".env")


def test_inference_without_key_names_variable_and_dotenv() -> None:
    code, out = run("console")
    assert_one_line_error(code, out, "LIVEKIT_API_KEY is not set", ".env", "--llm openai/")


@pytest.mark.parametrize("command", [["run"], ["dev"], ["connect", "--room", "r1"]])
def test_room_commands_need_a_url(command: list[str]) -> None:
    code, out = run(*command, env={"LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET})
    assert_one_line_error(code, out, "LIVEKIT_URL", "--url")


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "localhost:8080", "127.0.0.1"])
def test_llm_base_url_must_be_http(url: str) -> None:
    code, out = run("console", "--llm-base-url", url, "--stt", "none", "--tts", "none")
    assert_one_line_error(code, out, "--llm-base-url", "http://", url)


def test_secrets_never_printed() -> None:
    # the message echoes the bad --stt value, which here is the secret itself: it is masked
    secret = "sekrit-value-that-must-not-leak"
    code, out = run("run", "--stt", secret, env={"LIVEKIT_API_SECRET": secret,
                                                 "LIVEKIT_API_KEY": API_KEY})
    assert_one_line_error(code, out, "--stt expects PROVIDER/MODEL", "'***'")
    assert secret not in out


def test_bare_command_prints_help() -> None:
    code, out = run()
    assert code == 0
    for command in ("console", "run", "dev", "connect"):
        assert command in out


def test_global_options_without_command_run_console() -> None:
    # the console's own validation answers, so `lkmetrics --format json` did run console
    code, out = run("--format", "json")
    assert_one_line_error(code, out, "LIVEKIT_API_KEY")


def test_version() -> None:
    from lkmetrics import __version__

    code, out = run("--version")
    assert code == 0 and out.strip() == f"lkmetrics {__version__}"


def test_errors_through_a_real_process_have_no_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "lkmetrics", "console", "--llm", "gpt4"],
                          capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "Error: --llm expects PROVIDER/MODEL, e.g. openai/gpt-4.1-mini, 'local' (got 'gpt4')."
    ]


def test_help_does_not_import_livekit() -> None:
    code = (
        "import sys\n"
        "from lkmetrics.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='lkmetrics')\n"
        "except SystemExit:\n"
        "    pass\n"
        "for cmd in ('console', 'run', 'dev', 'connect'):\n"
        "    try:\n"
        "        app([cmd, '--help'], prog_name='lkmetrics')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('LIVEKIT' if any(m.startswith('livekit') for m in sys.modules) else 'CLEAN',"
        " file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=subprocess_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("CLEAN")
    assert "console" in proc.stdout
