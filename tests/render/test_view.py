"""Tables at 80 and 120 columns, one model identity everywhere, and its migration."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lkmetrics.analysis import report
from lkmetrics.figures import FIGURES, STAGE_LABELS, shown_only_if_measured
from lkmetrics.pipeline import SummaryBuilder
from lkmetrics.records import Record, model_identity, model_label
from lkmetrics.render.live import TableWriter
from lkmetrics.store import Scope, Store, importer, parsing
from lkmetrics.store.importer import import_files
from lkmetrics.store.schema import m001_sessions_and_records, m002_figure_columns
from tests.helpers.store import run, session_records, write_jsonl

LOCAL_MODEL = "SmolLM2-135M-Instruct.Q4_1"


def local_session(sid: str, port: int, *, seed: int = 0, start: float = 1_764_240_000.0,
                  base_url_user: bool = False) -> Iterator[Record]:
    """A session as ``simulate --local`` records it (or, with ``base_url_user``, as one with
    ``--llm openai/gpt-4.1-mini --llm-base-url``): the server's port is ephemeral."""
    name = "gpt-4.1-mini" if base_url_user else LOCAL_MODEL
    for r in session_records(sid, turns=3, seed=seed, start=start,
                             llm=f"127.0.0.1:{port}/{name}", stt="local/whisper-tiny",
                             tts="local/piper-joe"):
        if r["kind"] == "session":
            r["llm"] = "openai/gpt-4.1-mini" if base_url_user else "local"
            r["stt"] = r["tts"] = "local"
            r["llm_base_url"] = f"http://127.0.0.1:{port}/v1"
            r["llm_model"] = None if base_url_user else LOCAL_MODEL
        if r["kind"] == "usage":
            for u in r["usage"]:
                if u["type"] == "llm_usage":
                    u["provider"] = f"127.0.0.1:{port}"
        yield r


def four_sessions() -> list[Record]:
    return [*local_session("s_aaaaaaaaaaa1", 40307),
            *local_session("s_aaaaaaaaaaa2", 45287, seed=1, start=1_764_250_000.0),
            *local_session("s_bbbbbbbbbbb1", 8081, seed=2, start=1_764_260_000.0,
                           base_url_user=True),
            *local_session("s_bbbbbbbbbbb2", 9191, seed=3, start=1_764_270_000.0,
                           base_url_user=True)]


# -- model identity ---------------------------------------------------------------------------


def test_model_identity_of_each_way_a_model_is_named() -> None:
    llm = {"kind": "llm", "metadata": {"model_name": LOCAL_MODEL,
                                       "model_provider": "127.0.0.1:40307"}}
    local = {"llm": "local", "llm_base_url": "http://127.0.0.1:40307/v1",
             "llm_model": LOCAL_MODEL}
    assert model_identity(llm, local) == "local/smollm2-135m-instruct"
    assert model_identity({"kind": "turn"}, local) == "local/smollm2-135m-instruct"
    assert model_identity({"kind": "eou"}, local) == "local/smollm2-135m-instruct"
    served = {"llm": "openai/gpt-4.1-mini", "llm_base_url": "http://gpu.lan:8080/v1"}
    assert model_identity(llm, served) == "gpu.lan/gpt-4.1-mini"
    assert model_identity(llm, {"llm": "openai/gpt-4.1-mini"}) == "openai/gpt-4.1-mini"
    # without the session: LiveKit's metadata, never a port
    assert model_label(llm) == f"127.0.0.1:40307/{LOCAL_MODEL}"
    assert model_identity(llm) == f"127.0.0.1/{LOCAL_MODEL}"
    stt = {"kind": "stt", "metadata": {"model_name": "whisper-tiny", "model_provider": "local"}}
    assert model_identity(stt, {"stt": "local"}) == "local/whisper-tiny"


def _models(out: str) -> set[str]:
    return set(re.findall(r"^│ model (\S+)", out, re.MULTILINE))


@pytest.mark.parametrize("how", ["recorder", "import", "parallel import"])
def test_two_local_and_two_base_url_runs_are_one_model_each(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "m.db"
    records = four_sessions()
    if how == "recorder":
        with Store.open(db) as s:
            s.insert(records)
    else:
        if how == "parallel import":  # sessions split over worker processes and chunks
            monkeypatch.setattr(parsing, "CHUNK_BYTES", 3000)
            monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
        with Store.open(db) as s:
            import_files(s, [write_jsonl(tmp_path / "r.jsonl", records)],
                           lambda *a: None, workers=2 if how == "parallel import" else 0)
    monkeypatch.setenv("COLUMNS", "120")
    res = run("report", "--by", "model", "--db", str(db))
    assert res.exit_code == 0, res.output
    assert _models(res.stdout) == {
        "local/smollm2-135m-instruct", "127.0.0.1/gpt-4.1-mini", "local/whisper-tiny",
        "local/piper-joe"}
    assert ":40307" not in res.stdout and ":8081" not in res.stdout
    with Store.open(db) as s:
        rep = report.summarise(s, report.select(s, None, None), "model")
        # turn and EOU figures go under the session's LLM, not a name of their own
        assert {r.group for r in rep.rows if r.figure.kind in ("turn", "eou")} == {
            "local/smollm2-135m-instruct", "127.0.0.1/gpt-4.1-mini"}
        e2e = rep.row("e2e", "local/smollm2-135m-instruct")
        assert e2e is not None and e2e.stats["count"] == 6
        assert {t.model for t in rep.tokens} == {
            "local/smollm2-135m-instruct", "127.0.0.1/gpt-4.1-mini"}
        assert {u["model"] for u in rep.usage if u["type"] == "llm_usage"} == {
            "local/smollm2-135m-instruct", "127.0.0.1/gpt-4.1-mini"}
        assert [r.llm for r in s.sessions()] == ["127.0.0.1/gpt-4.1-mini"] * 2 + [
            "local/smollm2-135m-instruct"] * 2
    res = run("compare", "--by", "model", "smollm2-135m-instruct", "127.0.0.1/gpt-4.1-mini",
              "--db", str(db), "--format", "json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    counts = {f["figure"]: (f["count_a"], f["count_b"]) for f in got["figures"]}
    assert counts["e2e"] == (6, 6) and counts["llm.ttft"] == (6, 6)


def _old_store(path: Path, records: list[Record]) -> None:
    """A store as today's schema (version 2) and extraction wrote it: the model column from
    LiveKit's metadata with the server's port, no model on turn and EOU records, and the
    sessions' stage columns as typed."""
    conn = sqlite3.connect(path, isolation_level=None)
    m001_sessions_and_records(conn)
    m002_figure_columns(conn)
    conn.execute("PRAGMA user_version = 2")
    for r in records:
        model = model_label(r) if r["kind"] in ("llm", "stt", "tts") else None
        cols: dict[str, Any] = {"model": model}
        if r["kind"] == "llm":
            cols.update(llm_ttft=r["ttft"], llm_duration=r["duration"],
                        prompt_tokens=r["prompt_tokens"],
                        completion_tokens=r["completion_tokens"],
                        total_tokens=r["total_tokens"])
        if r["kind"] == "turn":
            cols["e2e"] = r["e2e_latency"]
        if r["kind"] == "eou":
            cols["eou_delay"] = r["end_of_utterance_delay"]
        names = ", ".join(cols)
        conn.execute(
            f"INSERT INTO records (session_id, seq, kind, time, json, {names}) "
            f"VALUES (?, ?, ?, ?, ?, {', '.join('?' * len(cols))})",
            (r["session_id"], r["seq"], r["kind"], r["time"], json.dumps(r), *cols.values()))
        if r["kind"] == "session":
            conn.execute("INSERT INTO sessions (id, started, ended, llm, stt, tts) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (r["session_id"], r["time"], r["time"] + 10, r["llm"], r["stt"],
                          r["tts"]))
    conn.close()


def test_migration_rewrites_the_models_of_a_store_written_by_todays_schema(
    tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    records = four_sessions()
    for r in records:  # recorded before sessions carried llm_model
        if r["kind"] == "session":
            r.pop("llm_model")
    _old_store(db, records)
    conn = sqlite3.connect(db)
    before = {m for (m,) in conn.execute("SELECT DISTINCT model FROM records "
                                         "WHERE kind = 'llm'")}
    conn.close()
    assert len(before) == 4  # every port its own model
    with Store.open(db) as s:
        assert s.schema_version >= 3
        groups = s.figure_values(next(f for f in FIGURES if f.name == "e2e"),
                                 Scope(), "model")
        assert sorted(groups) == ["127.0.0.1/gpt-4.1-mini", "local/smollm2-135m-instruct"]
        llm = {m for (m,) in s.conn.execute("SELECT DISTINCT model FROM records "
                                            "WHERE kind = 'llm'")}
        assert llm == {"127.0.0.1/gpt-4.1-mini", "local/smollm2-135m-instruct"}
        assert {r.llm for r in s.sessions()} == llm


# -- layout -----------------------------------------------------------------------------------


@pytest.fixture
def store_db(tmp_path: Path) -> Path:
    db = tmp_path / "m.db"
    with Store.open(db) as s:
        s.insert([*session_records("s_3f9a0c2b7d41", turns=4),
                  *session_records("s_8e1d5b7a2c90", turns=3, seed=3, llm="openai/gpt-4o",
                                   start=1_764_250_000.0),
                  *four_sessions()])
    return db


# no --agent tool calls or simulated caller dynamics here
FIGURE_NAMES = [f.name for f in FIGURES if not shown_only_if_measured(f)]
IDS = ["s_3f9a0c2b7d41", "s_8e1d5b7a2c90", "s_aaaaaaaaaaa1", "s_bbbbbbbbbbb2"]


def _check_width(out: str, width: int) -> None:
    for line in out.splitlines():
        if line.startswith(("│", "┌", "├", "└")):
            assert len(line) <= width, line


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("args", [
    ("sessions",), ("report",), ("report", "--by", "model"), ("report", "--by", "session"),
    ("compare", "s_3f9a0c2b7d41", "s_8e1d5b7a2c90"),
])
def test_store_tables_fit_and_never_cut(args: tuple[str, ...], width: int, store_db: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    res = run(*args, "--db", str(store_db))
    assert res.exit_code == 0, res.output
    out = res.stdout
    _check_width(out, width)
    assert "…" not in out
    words = set(re.findall(r"[\w./:\-]+", out))
    if args[0] == "sessions":
        assert set(IDS) <= words
        assert re.search(r"\b\d\d-\d\d \d\d:\d\d\b", out)  # compact start time
        if width == 120:
            assert "local/smollm2-135m-instruct" in words and "Status" in out
    else:
        assert set(FIGURE_NAMES) <= words  # every figure name whole
        cells = re.findall(r"│ *([^│]*?) *(?=│)", out)
        assert all(not c.endswith(("ms", "s")) or re.fullmatch(
            r"[+-]?[\d.]+ (ms|s|tok/s)", c) for c in cells if re.match(r"^[+-]?\d", c))
    if args[0] == "report" and width == 120:
        assert "mean" in out and "p99" in out  # the extra width shows every stat
    if args[0] == "report" and width == 80:
        assert "p50" in out and "p95" in out  # what a narrow terminal keeps
    if args[0] == "compare":
        assert "s_3f9a0c2b7d41" in out and "B p95" in out


def _live(view: str, width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    w = TableWriter(console, view=view)
    b = SummaryBuilder()
    for r in local_session("s_c0ffee123456", 40307):
        r = {**r}
        if r["kind"] == "turn" and r["seq"] < 10:
            r["e2e_latency"] = None  # the greeting has no e2e
        b.add(r)
        w.write(r)
    w.write({**b.summary(), "session_id": "s_c0ffee123456", "kind": "summary"})
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("view", ["recipe", "compact"])
def test_live_views_fit_and_keep_ids_and_figures_whole(view: str, width: int) -> None:
    out = _live(view, width)
    assert all(len(line) <= width for line in out.splitlines())
    assert "…" not in out.replace("said :", "")
    assert "s_c0ffee123456" in out and "local/smollm2-135m-instruct" in out
    assert "127.0.0.1:40307" not in out
    turn_lines = [line for line in out.splitlines() if line.startswith("Turn ")]
    assert len(turn_lines) == 3
    assert "█" not in turn_lines[0]  # no e2e: no bar
    assert "e2e over turns" in out  # the summary's spark chart
    if view == "compact":
        assert "Metrics Report" not in out
        # a turn's block (its metric lines, the turn, its legend and text) fits in ten lines
        lines = out.splitlines()
        before_summary = next(i for i, line in enumerate(lines) if "Session summary" in line)
        assert before_summary < 3 * 10 + 3, lines[:before_summary]
    else:
        assert "LLM Metrics Report" in out


def test_view_option_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from lkmetrics.cli.options import view_name

    assert view_name(None) == "recipe" and view_name("Compact") == "compact"
    from lkmetrics.errors import UsageError

    with pytest.raises(UsageError, match="--view expects recipe or compact"):
        view_name("fancy")


def test_turn_line_lists_the_turns_tool_calls() -> None:
    """The live view's turn shows each tool it called, its time and a failure."""
    from lkmetrics.render.turns import turn_line

    turn: Record = {"kind": "turn", "turn": 2, "e2e_latency": 1.2,
                    "stages": {"end_of_turn": 0.3, "tools": 0.5, "llm_ttft": 0.2,
                               "first_sentence": 0.1, "tts_ttfb": 0.1, "playback": 0.0,
                               "unexplained": 0.0, "overlap": 0.0},
                    "tools": [{"name": "lookup_weather", "duration": 0.31, "ok": True},
                              {"name": "order_item", "duration": 0.002, "ok": False}]}
    console = Console(width=120, record=True, color_system=None)
    console.print(turn_line(turn, 120))
    lines = console.export_text().splitlines()
    (tools,) = [line for line in lines if line.strip().startswith("tools:")]
    assert tools.strip() == "tools: lookup_weather 310 ms · order_item 2.0 ms (error)"
    turn["tools"] = []
    console = Console(width=120, record=True, color_system=None)
    console.print(turn_line(turn, 120))
    assert "tools:" not in console.export_text()


def _turn(n: int, e2e: float) -> Record:
    """A turn whose stages add up to ``e2e``: end of turn 40 %, TTFT 30 %, TTS 30 %."""
    return {"kind": "turn", "turn": n, "e2e_latency": e2e,
            "stages": {"end_of_turn": 0.4 * e2e, "llm_ttft": 0.3 * e2e, "tts_ttfb": 0.3 * e2e}}


def _bars(out: str) -> dict[int, int]:
    return {int(m.group(1)): m.group(2).count("█")
            for m in re.finditer(r"^Turn (\d+) .*?(█+)", out, re.MULTILINE)}


def test_turn_bars_share_one_time_scale_per_session() -> None:
    """The same e2e draws the same length in every turn, a longer one a longer bar, whatever
    came first; the scale is shown once."""
    console = Console(width=80, record=True, color_system=None)
    w = TableWriter(console)
    w.write({"kind": "session", "session_id": "s_1"})
    for n, e2e in enumerate([1.0, 2.0, 1.0, 0.5, 2.4], start=1):
        w.write(_turn(n, e2e))
    out = console.export_text()
    bars = _bars(out)
    assert bars[1] == bars[3]
    assert bars[4] < bars[1] < bars[2] < bars[5]
    assert abs(bars[2] - 2 * bars[1]) <= 1 and abs(bars[1] - 2 * bars[4]) <= 1
    (scale,) = re.findall(r"bar: 40 cols = (\S+) s", out)
    # the scale is what the bars draw: 40 columns are that many seconds
    assert bars[1] == round(1.0 / float(scale) * 40)
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "▸" in out.splitlines()[-2]  # longer than the line: cut, and says so
    # a new session sets its own scale
    w.write({"kind": "session", "session_id": "s_2"})
    w.write(_turn(1, 0.2))
    assert console.export_text().count("bar: 40 cols = ") == 1  # export_text clears


def test_stage_legend_is_coloured_like_the_bar_and_does_not_wrap() -> None:
    from rich.console import Group
    from rich.text import Text

    from lkmetrics.render.turns import turn_line

    turn = _turn(2, 2.0)
    turn["stages"].update(first_sentence=0.41, playback=0.2, unexplained=0.3)
    turn["heard_latency"] = 2.1
    group = turn_line(turn, 80)
    assert isinstance(group, Group)
    head, *rest = group.renderables
    assert isinstance(head, Text)
    bar_styles = [str(s.style) for s in head.spans if "█" in head.plain[s.start:s.end]]
    legend = [line for line in rest if isinstance(line, Text)]
    legend_styles = {str(s.style): legend_line.plain[s.start:s.end]
                     for legend_line in legend for s in legend_line.spans}
    # each bar segment's colour names its stage in the legend (by the registry's name, a
    # figure's short name), in the same order
    names = [STAGE_LABELS[n] for n in ("end_of_turn", "llm_ttft", "first_sentence",
                                        "tts_ttfb", "playback", "unexplained")]
    assert [legend_styles[s].rsplit(" ", 2)[0] for s in bar_styles] == names
    console = Console(width=80, record=True, color_system=None)
    console.print(group)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    # broken between stages, never inside one: every legend line is whole "name value" items
    for line in lines[1:]:
        for item in line.strip().split(" · "):
            assert re.fullmatch(r"[a-z_ ]+ [\d.]+ m?s", item), line
