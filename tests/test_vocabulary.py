"""One vocabulary: every figure has one name in what lkmetrics shows (the registry's name in
tables and budgets, its short name in lines and legends), every unit one spelling (``342 ms``,
``1.24 s``, ``43.8 tok/s``), and only lkmetrics/figures.py declares a figure's words."""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from lkmetrics.figures import COST_FIGURES, FIGURES
from lkmetrics.pipeline import SummaryBuilder
from lkmetrics.records import STAGE_NAMES, Record
from lkmetrics.render.live import TableWriter
from lkmetrics.store import Store
from tests.helpers.common import ROOT
from tests.helpers.store import run, session_records

# the other names a stage or a figure had, and the other spellings of a unit: none may show
OLD_SPELLINGS = {
    "a unit glued to its number": r"\d(ms|s)\b",
    "a rate without tok/s": r"\d/s\b|\btokens/s\b",
    "eot for the end of turn": r"\beot\b",
    "end_of_turn for the end of turn": r"\bend_of_turn\b",
    "transcr. for the transcription": r"\btranscr\b",
    "first_sentence without its figure's name": r"(?<!turn\.)\bfirst_sentence\b",
    "sentence alone": r"(?<!first )\bsentence \d",
    "Wait for the first sentence": r"Wait for the first sentence",
    "the compact view's abbreviations": r"\b(dur|play|other) \d|(?<!eou )\bdelay \d",
    "TTFT/TTFB in capitals (LLM TTFT, TTS TTFB)": r"\bTTF[TB]\b",
    "EOU in capitals": r"\bEOU\b(?! Metrics Report)",
}
# a session's length is a clock (4m05s, 2h03m): not a unit spelling
CLOCK = re.compile(r"\b\d+[hm]\d\d[ms]\b")


def _live(view: str) -> str:
    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    writer = TableWriter(console, view=view)
    builder = SummaryBuilder()
    sid = "s_5ca1ab1e0001"
    for r in session_records(sid, turns=3, summary=False):
        builder.add(r)
        writer.write(r)
    writer.write({**builder.summary(), "session_id": sid, "kind": "summary"})
    writer.close()
    return console.export_text()


def _bench_llm() -> str:
    from lkmetrics.analysis.budgets import parse_budget
    from lkmetrics.bench.llm import core
    from lkmetrics.bench.llm.render import write_table

    run_ = core.RunResult("x/m", "127.0.0.1:1", 1, [
        core.RequestResult(ttft=0.1 + i / 100, latency=0.5, itl=[0.01, 0.02], output_tokens=3)
        for i in range(5)], 1.0, metrics=[
        {"kind": "llm", "ttft": 0.3 + i / 100, "duration": 0.6, "decode_rate": 40.0}
        for i in range(5)])
    out = io.StringIO()
    write_table([run_], out, checked=core.check([run_], [parse_budget("llm.ttft.p95=1s")]))
    return out.getvalue()


def _bench_voice() -> str:
    from lkmetrics.bench.voice.core import VoiceRun
    from lkmetrics.bench.voice.render import write_table

    records: list[Record] = list(session_records("s_5ca1ab1e0002", turns=4))
    voice = VoiceRun("deepgram/nova-3", "openai/gpt-4.1-mini", "cartesia/sonic-3", 1, 4, [],
                     records, 9.0, turns_ok=4)
    out = io.StringIO()
    write_table("b_0123456789ab", [voice], [], out, recorded=False)
    return out.getvalue()


def _store_command(tmp_path: Path, *args: str) -> str:
    db = tmp_path / "m.db"
    if not db.exists():
        with Store.open(db) as s:
            s.insert([*session_records("s_3f9a0c2b7d41", turns=6),
                      *session_records("s_8e1d5b7a2c90", turns=6, seed=3, scale=2.0,
                                       start=1_764_250_000.0)])
    result = run(*args, "--db", str(db))
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def _html_report(tmp_path: Path) -> str:
    """The HTML report's text: its chart titles, legends, axis labels and summary table."""
    import html

    _store_command(tmp_path, "sessions")
    page = tmp_path / "report.html"
    result = run("plot", "--out", str(page), "--db", str(tmp_path / "m.db"))
    assert result.exit_code == 0, result.output
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))


OUTPUTS: dict[str, Callable[[Path], str]] = {
    "live recipe": lambda _: _live("recipe"),
    "live compact": lambda _: _live("compact"),
    "report": lambda tmp: _store_command(tmp, "report"),
    "compare": lambda tmp: _store_command(tmp, "compare", "s_3f9a0c2b7d41", "s_8e1d5b7a2c90"),
    "bench llm": lambda _: _bench_llm(),
    "bench voice": lambda _: _bench_voice(),
    "html report": _html_report,
    "terminal plot": lambda tmp: _store_command(tmp, "plot"),
}


@pytest.mark.parametrize("what", list(OUTPUTS))
def test_outputs_use_one_name_and_one_unit_spelling(what: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    out = OUTPUTS[what](tmp_path)
    text = CLOCK.sub("", out)
    found = {why: m.group(0) for why, pattern in OLD_SPELLINGS.items()
             if (m := re.search(pattern, text))}
    assert not found, (found, out)
    assert re.search(r"\d (ms|s)\b", out), out  # it did show times


def _string_literals(path: Path) -> set[str]:
    """The string constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings}


def test_a_figures_words_are_declared_once() -> None:
    """No module but figures.py writes a figure's title or short name: every other one reads
    them from the registry. (A name is also a record field or a stage key, which modules
    read records by: those are left out.)"""
    from lkmetrics.figures import REQUEST_FIGURES

    figures = (*FIGURES, *COST_FIGURES, *REQUEST_FIGURES)
    fields = {f.field.rsplit(".", 1)[-1] for f in figures} | set(STAGE_NAMES)
    words = {w for f in figures for w in (f.title, f.short) if w and w not in fields}
    assert {"LLM time to first token", "llm ttft", "first sentence", "eou delay"} <= words
    package = ROOT / "lkmetrics"
    found = {}
    for path in sorted(package.rglob("*.py")):
        if path.name == "figures.py" and path.parent == package:
            continue
        clash = words & _string_literals(path)
        if clash:
            found[str(path.relative_to(ROOT))] = sorted(clash)
    assert not found, found


def test_names_and_short_names_are_unique() -> None:
    from lkmetrics.figures import REQUEST_FIGURES, STAGE_LABELS

    figures = (*FIGURES, *COST_FIGURES, *REQUEST_FIGURES)
    names = [f.name for f in figures]
    shown = [f.shown for f in figures]
    assert len(set(names)) == len(names)
    assert len(set(shown)) == len(shown), shown
    # a stage drawn in a turn's bar is named as its figure is in lines
    by_stage = {f.stage: f.shown for f in FIGURES if f.stage}
    assert by_stage.items() <= STAGE_LABELS.items()
    assert set(STAGE_NAMES) <= set(STAGE_LABELS)


def test_one_percentile_definition() -> None:
    """Every percentile is the registry's: no module but figures.py computes one itself
    (numpy's percentile, quantile or median, the statistics module, a pandas quantile)."""
    own = {"percentile", "nanpercentile", "quantile", "nanquantile", "median", "quantiles"}
    package = ROOT / "lkmetrics"
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "figures.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in own and not (
                    isinstance(node.value, ast.Name) and node.value.id not in (
                        "np", "numpy", "statistics", "pd", "pandas")):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Import | ast.ImportFrom) and "statistics" in (
                    [a.name for a in node.names] + [getattr(node, "module", None)]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


def test_percentile_rows_is_percentile_row_by_row() -> None:
    import random

    from lkmetrics.figures import percentile, percentile_rows

    rng = random.Random(7)
    rows = [[rng.uniform(0, 2) for _ in range(n)] for n in (17, 17, 17)]
    for q in (2.5, 50, 95, 97.5):
        got = percentile_rows(rows, q)
        assert list(got) == pytest.approx([percentile(sorted(r), q) for r in rows], abs=1e-12)
    lo, hi = percentile_rows(rows[0], [2.5, 97.5])
    assert (lo, hi) == pytest.approx((percentile(sorted(rows[0]), 2.5),
                                      percentile(sorted(rows[0]), 97.5)))


@pytest.mark.parametrize("value, unit, shown", [
    (0.312, "s", "312 ms"), (0.0042, "s", "4.2 ms"), (1.24, "s", "1.24 s"),
    (43.8, "tok/s", "43.8 tok/s"), (0.0193, "req/s", "0.019 req/s"), (6.43, "req/s", "6.4 req/s"),
    (None, "s", "-"),
])
def test_one_unit_spelling(value: float | None, unit: str, shown: str) -> None:
    from lkmetrics.units import fmt_value, signed

    assert fmt_value(value, unit) == shown
    if value:
        assert signed(-value, unit) == "-" + shown
