"""The README, its docs/ pages, .env.example and .ci/run are checked against the code, not
hoped for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from lkmetrics.cli import app
from lkmetrics.cli.app import load_all
from lkmetrics.figures import FIGURES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# the docs/ pages the README links to hold what moved out of it (internals, long references)
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
MAX_README_LINES = 400


def cli_commands() -> dict[str, object]:
    """Every command, loaded (``lkmetrics --help`` loads none of them)."""
    commands = load_all()
    assert sorted(commands) == sorted(typer.main.get_command(app).list_commands(None))  # type: ignore[attr-defined]
    return commands


def test_readme_command_table_matches_the_cli() -> None:
    table = re.findall(r"^\| `([a-z-]+)` \| ", README.split("Commands:", 1)[1], re.M)
    table = table[: table.index("import") + 1]
    assert sorted(table) == sorted(cli_commands())


def test_every_command_and_option_has_help() -> None:
    for name, command in cli_commands().items():
        assert (command.help or "").strip(), name  # type: ignore[attr-defined]
        for param in command.params:  # type: ignore[attr-defined]
            if param.param_type_name == "option" and param.name not in ("help",):
                assert (param.help or "").strip(), f"{name} {param.name}"


def test_setup_commands_and_ci_agree() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    # what install.sh makes: a project virtualenv (or a link to the Python you chose) in .venv
    assert blocks[0] == "bash scripts/install.sh && .venv/bin/lkmetrics simulate --local"
    assert blocks[1] == "bash scripts/install.sh && .venv/bin/python -m pytest"
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert 'PY="$ROOT/.venv/bin/python"' in install
    assert 'ln -sfn "$prefix" .venv' in install
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "bash scripts/install.sh" in ci
    assert blocks[1].split(" && ", 1)[1] in ci  # the README's test command, exactly
    # every tool CI runs comes from the same virtualenv the README's commands use
    runs = [line for line in ci if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert all(line.startswith((".venv/bin/python -m ", ".venv/bin/lint-imports", "bash scripts/"))
               for line in runs), runs


def test_readme_lists_every_figure_and_env_var() -> None:
    for figure in FIGURES:  # the README's figure table
        assert f"`{figure.name}`" in README, figure.name
    example = (ROOT / ".env.example").read_text()
    for var in re.findall(r"^#?\s*([A-Z][A-Z_]+)=", example, re.M):
        assert f"`{var}`" in README, var  # the README's table


def test_every_local_model_setting_is_in_the_readme_and_docs_local() -> None:
    from lkmetrics.local import llm_server, stt, tts

    settings = [stt.WHISPER_THREADS_ENV, stt.WHISPER_WINDOW_ENV, stt.WHISPER_FINAL_ENV,
                llm_server.THREADS_ENV, tts.PIPER_THREADS_ENV]
    # every LKMETRICS_ variable lkmetrics/local names, but the one it sets for its own child
    # and the app directory (in the README's table with the others)
    read = set(re.findall(r'"(LKMETRICS_[A-Z_]+)"', "".join(
        path.read_text() for path in (ROOT / "lkmetrics/local").glob("*.py"))))
    assert read - {"LKMETRICS_PARENT_PID", "LKMETRICS_HOME"} == set(settings)
    for var in settings:
        assert f"`{var}`" in README, var
        assert f"| `{var}` |" in DOCS["local.md"], var  # its settings table


def test_readme_json_example_validates_as_a_livekit_metric() -> None:
    import json

    from livekit.agents.metrics import AgentMetrics, LLMMetrics
    from pydantic import TypeAdapter

    line = re.search(r"```json\n(.*?)\n```", DOCS["records.md"], re.S)
    assert line
    record = json.loads(line.group(1))
    assert isinstance(TypeAdapter(AgentMetrics).validate_python(record), LLMMetrics)


def test_readme_is_short_and_its_docs_links_exist() -> None:
    lines = README.count("\n") + (not README.endswith("\n"))
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)\s]*)?\)", README)
    assert any(link.endswith(".md") for link in links), "the README links no docs/ page"
    missing = sorted({link for link in links if not (ROOT / link).is_file()})
    assert not missing, f"the README links docs that do not exist: {missing}"
    # every docs page is reachable from the README, so nothing that moved is hidden
    unlinked = sorted(set(DOCS) - {link.removeprefix("docs/") for link in links})
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_readme_examples_name_files_that_exist() -> None:
    # a WAV given to --say, or a file given to --agent, must ship with the checkout
    paths = re.findall(r"(?:--say|--agent) ((?:[\w./-]+)\.(?:wav|py))\b", README)
    assert paths
    missing = sorted({p for p in paths if not (ROOT / p).is_file()})
    assert not missing, missing


def test_scenario_doc_shows_the_shipped_example_and_it_loads() -> None:
    from lkmetrics.simulate.scenario import STEPS, load_scenario

    paths = re.findall(r"--scenario ([\w./-]+\.toml)\b(?!:)", README + DOCS["scenario.md"])
    assert paths and all((ROOT / p).is_file() for p in paths), paths
    example = ROOT / "examples" / "scenarios" / "interruptions.toml"
    [block] = re.findall(r"```toml\n(.*?)```", DOCS["scenario.md"], re.S)
    assert block in example.read_text()  # the page shows the file as it ships
    turns = load_scenario(example)
    assert [t.behaviour.barge_in for t in turns] == [1.0, None, None]
    assert turns[0].wav is not None and turns[0].wav.is_file()
    for step in STEPS:  # every step is documented in the page's table
        assert f"| `{step}` |" in DOCS["scenario.md"], step


def test_readme_sweep_example_parses_as_bench_voice() -> None:
    import shlex

    from lkmetrics.bench.voice.sweep import SETTINGS, parse_sweep

    [line] = [ln for ln in README.splitlines() if ln.startswith("lkmetrics bench voice")
              and "--sweep" in ln]
    args = shlex.split(line)[1:]
    assert args[:2] == ["bench", "voice"]
    voice: Any = cli_commands()["bench"].commands["voice"]  # type: ignore[attr-defined]
    # unknown options or bad option values fail here, as they would on the command line
    params = voice.make_context("voice", list(args[2:])).params
    sweep = parse_sweep(params["sweep"])
    assert sweep is not None and sweep.name in SETTINGS
    assert params["pause_mid"] and params["local"]
    # the pasted table has one row per swept value, in order
    values = [f"{v:g} s" for v in sweep.values]
    rows = [ln.split()[:2] for ln in README.splitlines()
            if ln.startswith("  ") and ln.split()[:2][1:] == ["s"]]
    assert [" ".join(r) for r in rows] == values
