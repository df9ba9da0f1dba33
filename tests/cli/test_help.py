"""Help that says what it means at 80 columns: Rich markup does not eat `[plots]`, and an
on/off flag shows no `<bool>` value it does not take (issue 20)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.common import subprocess_env

COMMANDS = [[], ["console"], ["simulate"], ["report"], ["compare", "a", "b"], ["plot"],
            ["bench", "llm"], ["bench", "voice"], ["prices"], ["sessions"], ["export"]]


def help_text(*args: str, columns: int = 80) -> str:
    proc = subprocess.run([sys.executable, "-m", "lkmetrics", *args, "--help"],
                          capture_output=True, text=True, timeout=60,
                          env=subprocess_env(COLUMNS=str(columns), TERM="dumb"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_plot_help_names_the_plots_extra(columns: int) -> None:
    text = " ".join(help_text("plot", columns=columns).split())
    assert "pip install 'lkmetrics[plots]'" in text


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "lkmetrics")
def test_flags_show_no_bool_metavar(command: list[str]) -> None:
    text = help_text(*[c for c in command if c not in ("a", "b")])
    assert "--help" in text
    assert "<bool>" not in text
