"""Hostile values (issue 22) through every table writer, CSV writer and plot: terminal escape
sequences, newlines, Rich markup, CSV formula prefixes and a secret, as model names recorded
in the store (an import) and typed on the command line (bench llm). Every terminal output is
printable with every row on one line, markup is shown as text, CSV cells cannot run as
formulas, the secret appears nowhere, and nothing ends in a traceback."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from lkmetrics.figures import REQUEST_FIGURES
from lkmetrics.render.live import TableWriter
from lkmetrics.safety import console
from tests.helpers.llm_server import LLMServer
from tests.helpers.store import run, session_records, write_jsonl

SECRET = "sk-hostile-9f8e7d6c5b4a"

# name -> a model name holding the hostile value (no whitespace: --llm takes it too)
HOSTILE = {
    "osc_title": "m\x1b]0;pwned\x07",
    "osc8_link": "m\x1b]8;;file:///etc/passwd\x1b\\x",
    "clear_screen": "m\x1b[2J\x1b[H",
    "c1_csi": "m\x9b31m",
    "newline": "m\nFAKE-ROW",
    "carriage_return": "m\rFAKE",
    "bidi_override": "m\u202etxt",
    "markup_close": "x[/bold]",
    "markup_link": "[link=file:///etc/passwd]x[/link]",
    "formula_eq": "=HYPERLINK(\"http://evil\")",
    "formula_plus": "+1+cmd|'/c calc'!A0",
    "formula_at": "@SUM(1+1)",
    "secret": f"key-{SECRET}",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def check_terminal(text: str, value: str, shown: bool = True) -> None:
    """Printable, one line per row, markup shown as written, no secret."""
    assert not any(c in text for c in "\x1b\x07\x9b\r\u202e"), repr(text[:400])
    assert "FAKE-ROW" not in text.replace("\\nFAKE-ROW", "")  # never at the start of a line
    assert SECRET not in text
    if shown and "[" in value and value.isprintable():
        assert value in text  # shown, not interpreted


def check_csv(text: str) -> None:
    assert SECRET not in text
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell


@pytest.fixture(params=list(HOSTILE), ids=list(HOSTILE))
def hostile(request: pytest.FixtureRequest, tmp_path: Path, home: Path, wide: None,
            monkeypatch: pytest.MonkeyPatch) -> str:
    """A store with two sessions whose LLM is named by the hostile value."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    value = HOSTILE[request.param]
    records = [*session_records("s_a", llm=f"openai/{value}", seed=1),
               *session_records("s_b", llm=f"openai/{value}", seed=2, start=1_764_250_000.0)]
    for r in records:  # a value of its own in a cell: the host and voice columns
        if r["kind"] == "session":
            r.update(host=value, voice=value)
    path = write_jsonl(tmp_path / "hostile.jsonl", records)
    result = run("import", str(path))
    assert result.exit_code == 0, result.output
    return value


@pytest.mark.parametrize("argv", [
    ("sessions",), ("report", "--by", "model", "--since", "3000d"), ("report", "s_a"),
    ("compare", "s_a", "s_b"), ("report", "--by", "session", "--since", "3000d"),
])
def test_tables(hostile: str, argv: tuple[str, ...]) -> None:
    result = run(*argv, "--format", "table")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    check_terminal(result.stdout + result.stderr, hostile)


@pytest.mark.parametrize("argv", [
    ("sessions",), ("report", "--by", "model", "--since", "3000d"), ("export", "s_a"),
])
def test_csv_writers(hostile: str, argv: tuple[str, ...]) -> None:
    result = run(*argv, "--format", "csv")
    assert result.exit_code == 0, result.output
    check_csv(result.stdout)
    if hostile.startswith(FORMULA_STARTS) and argv[0] == "sessions":  # kept, neutralised
        cells = [c for row in csv.reader(io.StringIO(result.stdout)) for c in row]
        assert "'" + hostile in cells


def test_terminal_plot(hostile: str) -> None:
    result = run("plot", "--since", "3000d", "--by", "model")
    assert result.exit_code == 0, result.output
    check_terminal(result.stdout + result.stderr, hostile, shown=False)


def test_live_table_writer(hostile: str) -> None:
    out = io.StringIO()
    writer = TableWriter(console(file=out, width=200), view="recipe")
    compact = TableWriter(console(file=out, width=200), view="compact")
    for record in session_records("s_c", llm=f"openai/{hostile}", turns=1):
        writer.write(record)  # a MarkupError would lose the row
        compact.write(record)
    text = out.getvalue()
    assert "LLM Metrics Report" in text and "Session summary" in text
    check_terminal(text, hostile)


def test_bench_llm_table(hostile: str, llm_server: LLMServer) -> None:
    from typer.testing import CliRunner

    from lkmetrics.cli import app

    result: Any = CliRunner().invoke(app, [
        "bench", "llm", "--llm-base-url", llm_server.url, "--llm", f"x/{hostile}", "-n", "1",
        "--warmup", "0", "--no-record", "--format", "table"])
    if any(c.isspace() for c in hostile):  # --llm takes no whitespace: one clear line
        assert result.exit_code == 2 and result.stderr.startswith("Error: --llm expects")
        assert len(result.stderr.splitlines()) == 1 and not result.stdout
    else:
        assert result.exit_code == 0, result.output
        assert REQUEST_FIGURES[0].shown in result.stdout  # the table's first row
    check_terminal(result.stdout + result.stderr, hostile)


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"},
                                 {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}])
@pytest.mark.parametrize("argv", [("sessions",), ("report", "--since", "3000d"),
                                  ("compare", "s_a", "s_b")])
def test_a_terminal_that_is_not_utf8_gets_ascii_tables(
        tmp_path: Path, home: Path, env: dict[str, str], argv: tuple[str, ...]) -> None:
    import subprocess
    import sys

    from tests.helpers.common import ROOT, subprocess_env

    records = [*session_records("s_a", llm="openai/modèle", seed=1),
               *session_records("s_b", seed=2, start=1_764_250_000.0)]
    assert run("import", str(write_jsonl(tmp_path / "r.jsonl", records))).exit_code == 0
    proc = subprocess.run([sys.executable, "-m", "lkmetrics", *argv], capture_output=True,
                          env=subprocess_env(PYTHONPATH=str(ROOT), **env), timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr and proc.stdout.isascii()
    assert b"+---" in proc.stdout and b"| " in proc.stdout
