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


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "lkmetrics")
def test_help_paragraphs_fill_the_lines(command: list[str]) -> None:
    # Typer keeps a docstring's line breaks; each source line then wrapped on its own ("...
    # callers talking at" / "once, each ...", a 4-word line between two full ones)
    text = help_text(*[c for c in command if c not in ("a", "b")])
    prose = text.split("╭")[0].split("\n")[2:]  # after the usage line
    for paragraph in "\n".join(line.strip() for line in prose).split("\n\n"):
        lines = paragraph.strip().splitlines()
        for line, after in zip(lines, lines[1:], strict=False):
            # a line the terminal wrapped leaves less than the next word's room
            assert len(line) + 1 + len(after.split()[0]) > 78, (line, after)


# -- lkmetrics --help loads only what help needs (issue 18: at most 1.2x the Typer floor, see
# benchmarks/help_startup.py); module sets, not timings: the same on a busy machine

# what --help loads of lkmetrics: the app, its main callback and the defaults its options show
HELP_MODULES = {"lkmetrics", "lkmetrics.version", "lkmetrics.errors", "lkmetrics.cli",
                "lkmetrics.cli.app", "lkmetrics.cli.root", "lkmetrics.cli.options",
                "lkmetrics.config", "lkmetrics.config.defaults"}
PRINT_MODULES = "print(' '.join(sorted(sys.modules)))"
FLOOR = "import runpy, sys, typer.main, typer.rich_utils\n" + PRINT_MODULES  # runpy: as HELP
HELP = ("import runpy, sys\nsys.argv = ['lkmetrics', '--help']\n"
        "try:\n    runpy.run_module('lkmetrics', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('=' * 20)\n" + PRINT_MODULES)


def loaded_modules(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=subprocess_env(COLUMNS="80", TERM="dumb"))
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.rsplit("=" * 20, 1)[-1].split())


def test_import_cli_loads_no_command_module() -> None:
    modules = loaded_modules("import sys, lkmetrics.cli\n" + PRINT_MODULES)
    assert {m for m in modules if m.startswith("lkmetrics")} == HELP_MODULES
    for heavy in ("livekit", "rich", "sqlite3", "lkmetrics.store", "lkmetrics.agent"):
        assert not {m for m in modules if m == heavy or m.startswith(heavy + ".")}, heavy


def test_help_loads_only_the_floor_and_the_app() -> None:
    floor, help_ = loaded_modules(FLOOR), loaded_modules(HELP)
    extra = help_ - floor
    assert {m for m in extra if m.startswith("lkmetrics")} == HELP_MODULES
    # beyond Typer's own help (the floor): a few of its rendering modules, nothing else
    assert {m.split(".")[0] for m in extra if not m.startswith("lkmetrics")} <= {"rich", "typer"}
    assert "livekit" not in {m.split(".")[0] for m in help_}


def test_main_help_lists_every_command_as_its_own_help_says() -> None:
    """The main help lists the commands from lkmetrics.cli.app.COMMANDS without loading them;
    each entry names the module that registers it and the first paragraph of its help."""
    from lkmetrics.cli.app import COMMANDS, app, load_all

    commands = load_all()
    registered = {info.name for info in app.registered_groups} | {
        info.name or (info.callback.__name__ if info.callback else "")
        for info in app.registered_commands}
    assert set(COMMANDS) == registered
    for name, command in commands.items():
        assert command.name == name
        first = (command.help or "").split("\n\n")[0]
        assert COMMANDS[name][1] == " ".join(first.split()), name
    text = " ".join(help_text().split())
    for name, (_, line) in COMMANDS.items():
        assert f"{name} {line}" in text.replace("│ ", "").replace(" │", ""), name


def test_a_mistyped_command_names_the_near_ones() -> None:
    """Typer's "Did you mean" draws from the loaded commands; none is loaded before one runs."""
    proc = subprocess.run([sys.executable, "-m", "lkmetrics", "repot"], capture_output=True,
                          text=True, timeout=60, env=subprocess_env(COLUMNS="200", TERM="dumb"))
    assert proc.returncode == 2
    assert "No such command 'repot'. Did you mean 'report'" in proc.stderr
