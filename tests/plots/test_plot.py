"""``lkmetrics plot``: the offline HTML report in headless Chromium, PNG/SVG images, terminal
charts, and the one-line error of a missing plots extra."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from lkmetrics import store as store_mod
from lkmetrics.errors import UsageError
from lkmetrics.figures import FIGURES_BY_NAME
from lkmetrics.plots.extra import need
from lkmetrics.store import Store
from tests.helpers.store import run, session_records

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "m.db"
    with Store.open(path) as s:
        s.insert([*session_records("s_3f9a0c2b7d41", turns=6),
                  *session_records("s_8e1d5b7a2c90", turns=4, seed=3, llm="openai/gpt-4o",
                                   start=1_764_250_000.0)])
    return path


class _Recorder:
    """A loopback TCP listener used as the browser's proxy: counts every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.requests.append(conn.recv(4096))
                except OSError:
                    self.requests.append(b"?")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def _chromium(page: Path, tmp: Path, *args: str, size: str = "900,1600"
              ) -> tuple[str, str, list[bytes]]:
    """Open ``page`` from disk in headless Chromium with every request sent to a recording
    proxy; returns (stdout, stderr with console messages, proxied requests)."""
    assert CHROMIUM is not None
    proxy = _Recorder()
    try:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-default-apps", f"--user-data-dir={tmp / 'profile'}",
             f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
             "--enable-logging=stderr", "--v=0", f"--window-size={size}",
             *args, page.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        proxy.close()
    return proc.stdout, proc.stderr, proxy.requests


# the browser's own background calls (clock sync, updates), made whatever the page holds
BROWSER_HOSTS = re.compile(rb"^(?:GET|CONNECT|POST) [^ ]*(?:google\.com|gvt1\.com|googleapis\.com)")


def page_requests(requests: list[bytes]) -> list[bytes]:
    return [r for r in requests if not BROWSER_HOSTS.match(r)]


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line
            or "Uncaught" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed "
                    "(bash scripts/install.sh installs it)")
def test_html_report_in_headless_chromium(db: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    res = run("plot", "--db", str(db), "--out", str(page))
    assert res.exit_code == 0, res.output
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    # 1 stage chart, a CDF per figure (the fixture has values for each but tool.duration and
    # the simulated caller's dynamics), TTFT/e2e over time, tokens per request
    from lkmetrics.figures import FIGURES, shown_only_if_measured

    n_charts = len(re.findall(r'<svg class="chart"', text))
    assert n_charts == 1 + len([f for f in FIGURES if not shown_only_if_measured(f)]) + 3
    assert "<table>" in text and "llm.ttft" in text

    dom, err, requests = _chromium(page, tmp_path, "--dump-dom")
    assert len(re.findall(r'<svg class="chart"', dom)) == n_charts  # the browser built them
    assert _console_errors(err) == []
    assert page_requests(requests) == []  # the page makes no network request

    # the charts use the page's width: at 1200 px, two columns of charts wider than 500 px
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", "<script>document.title = [...document."
                                  "querySelectorAll('svg.chart')].map(e => {const r = e."
                                  "getBoundingClientRect(); return `${Math.round(r.left)}:"
                                  "${Math.round(r.width)}`}).join(' ')</script></body>"))
    dom, _, _ = _chromium(probe, tmp_path, "--dump-dom", size="1200,900")
    found = re.search(r"<title>([^<]*)</title>", dom)
    assert found, dom[:500]
    boxes = [tuple(map(int, b.split(":"))) for b in found.group(1).split()]
    assert len(boxes) == n_charts and all(w > 500 for _, w in boxes), boxes
    assert len({left for left, _ in boxes}) == 2, boxes

    shot = tmp_path / "shot.png"
    _, _, requests = _chromium(page, tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000 and page_requests(requests) == []

    # the checks can fail: a page with a console error and a remote image is caught
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom")</script>'
                   '<img src="http://example.invalid/x.png"></body></html>')
    _, err, requests = _chromium(bad, tmp_path, "--dump-dom")
    assert any("boom" in line for line in _console_errors(err))
    assert any(b"example.invalid" in r for r in page_requests(requests))


SVG_TEXT = re.compile(r'<text x="([\d.]+)" y="([\d.]+)" class="(\w)">([^<]*)</text>')
AXIS_LABEL = re.compile(r"^(\d+(\.\d+)?( ms| s| tok/s|%)?|first|last \(\d+\))$")


def test_html_report_says_what_it_covers_and_draws_axes_with_units(db: Path,
                                                                   tmp_path: Path) -> None:
    from lkmetrics.plots.html import PAD_B, H
    from lkmetrics.units import timestamp

    page = tmp_path / "report.html"
    assert run("plot", "--db", str(db), "--by", "model", "--out", str(page)).exit_code == 0
    text = page.read_text()
    head = text[text.index("<header>"):text.index("</header>")]
    with Store.open(db) as store:
        rows = sorted(store.sessions(), key=lambda r: r.started or 0)
    assert "<dt>Sessions</dt><dd>2</dd>" in head
    assert all(r.id in head for r in rows)
    assert f"{timestamp(rows[0].started)} to {timestamp(rows[-1].ended)}" in head
    assert "openai/gpt-4.1-mini" in head and "openai/gpt-4o" in head
    charts = re.findall(r'<svg class="chart".*?</svg>', text)
    assert charts and all(' width="' not in c.split(">", 1)[0] for c in charts)  # it scales
    titles = [re.search(r'aria-label="([^"]*)"', c).group(1) for c in charts]  # type: ignore
    # per-request TTFT and per-turn e2e: each on its own chart, with its own x axis
    ttft = charts[titles.index(f"{FIGURES_BY_NAME['llm.ttft'].title}, per request")]
    e2e = charts[titles.index(f"{FIGURES_BY_NAME['e2e'].title}, per turn")]
    assert "LLM request, in time order" in ttft and "turn, in time order" in e2e
    assert not any("ttft" in t.lower() and "e2e" in t for t in titles)
    for chart in charts:
        texts = SVG_TEXT.findall(chart)
        ticks = [label for _, _, cls, label in texts if cls == "y"]
        ticks += [label for _, y, cls, label in texts
                  if cls == "a" and float(y) < H - 10 and label]  # x ticks, not its caption
        assert ticks and all(AXIS_LABEL.match(t) for t in ticks), ticks
        units = {t.split(" ", 1)[1] for t in ticks if " " in t and not t.startswith("last")}
        assert len(units) <= 1, ticks  # one unit a chart (no 0.0ms beside 1.00s)
        # the legend is under the plot area, not over the data
        assert all(float(y) > H - PAD_B for _, y, cls, _ in texts if cls == "l"), chart


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_image_is_written_and_not_blank(suffix: str, db: Path, tmp_path: Path) -> None:
    out = tmp_path / f"report{suffix}"
    res = run("plot", "last", "--db", str(db), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 20_000
    if suffix == ".png":
        from PIL import Image

        with Image.open(out) as im:
            assert im.width >= 1000 and im.height >= 1000
            colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colors is not None and len(colors) > 50  # not blank
    else:
        svg = out.read_text()
        assert svg.count("<path") > 50
        # the same axes as the HTML report's: one unit a chart, TTFT and e2e apart
        texts = re.findall(r">([^<>]+)</text>", svg)
        assert f"{FIGURES_BY_NAME['llm.ttft'].title}, per request" in texts
        assert f"{FIGURES_BY_NAME['e2e'].title}, per turn" in texts
        assert {"0 ms", "100%"} <= set(texts) and not any(t.startswith(("-", "\u2212"))
                                                          for t in texts), texts


def charts_of(text: str) -> list[list[str]]:
    """The terminal charts of ``plot``, each its lines (title to legend)."""
    blocks = re.split(r"\n\n(?=[^\n]*\n *┌)", text)  # a blank line, then a title over a box
    return [block.strip("\n").splitlines() for block in blocks if "┌" in block]


TICK = re.compile(r"^-?\d+(\.\d+)? (ms|s|tok/s)$")


@pytest.mark.parametrize("by", [None, "model"])
def test_terminal_charts_are_cdfs_with_units_and_a_legend_under_the_data(
        db: Path, monkeypatch: pytest.MonkeyPatch, by: str | None) -> None:
    from lkmetrics.figures import FIGURES_BY_NAME, percentile
    from lkmetrics.units import fmt_value

    monkeypatch.setenv("COLUMNS", "100")
    res = run("plot", "--db", str(db), *(["--by", by] if by else ["last"]))
    assert res.exit_code == 0, res.output
    assert "\x1b[" not in res.stdout
    charts = charts_of(res.stdout)
    assert charts[0][0].strip() == "Per-turn latency by stage"
    # the stage chart's y axis: times in one unit, from 0
    ys = [line.split("┤")[0].strip() for line in charts[0] if "┤" in line]
    assert ys[-1] in ("0.0 s", "0 s", "0 ms") and all(TICK.match(y) for y in ys), ys
    with Store.open(db) as store:
        e2e = sorted(store.figures([FIGURES_BY_NAME["e2e"]], store_mod.Scope(("s_8e1d5b7a2c90",)),
                                   None)["e2e"]["all"])
    for chart in charts[1:]:
        bottom = max(i for i, line in enumerate(chart) if "└" in line)
        xs = chart[bottom + 1].split()
        ticks = [f"{a} {b}" for a, b in zip(xs[::2], xs[1::2], strict=False)]
        assert len(ticks) >= 3 and all(TICK.match(t) for t in ticks), chart[bottom + 1]
        assert not any(t.startswith("-") for t in ticks)
        values = [float(t.split()[0]) for t in ticks]
        assert values == sorted(values) and len(set(t.split()[1] for t in ticks)) == 1
        # the y axis is the share of values at or under x; the legend is under the chart
        assert chart[1 + 1].startswith("100%") or "100%" in chart[2]
        legend = chart[bottom + 2:]
        assert any("p50 and p95" in line for line in legend), chart
        if by and chart[0].strip().startswith("llm."):  # two LLMs: a line each
            assert "CDF by group" in chart[0]
            assert any("openai/gpt-4o (n=" in line for line in legend), legend
            assert not any("gpt-4o" in line for line in chart[:bottom])  # not over the data
    if not by:  # `last` is s_8e1d5b7a2c90: its e2e p50 and p95, as the report computes them
        title = next(c[0] for c in charts if c[0].strip().startswith("e2e:")).strip()
        assert title == (f"e2e: CDF of {len(e2e)} values, p50 "
                         f"{fmt_value(percentile(e2e, 50), 's')}, p95 "
                         f"{fmt_value(percentile(e2e, 95), 's')}")


def test_axis_ticks_are_round_and_in_one_unit() -> None:
    from lkmetrics.plots.axes import labels, ticks

    assert ticks(0.21, 0.86) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert labels(ticks(0.21, 0.86), "s") == ["0 ms", "200 ms", "400 ms", "600 ms", "800 ms",
                                              "1000 ms"]
    assert ticks(1.41, 1.69) == [1.4, 1.5, 1.6, 1.7]
    assert labels([1.5, 2.0, 2.5], "s") == ["1.5 s", "2.0 s", "2.5 s"]
    assert labels(ticks(0.0003, 0.0009), "s")[:2] == ["0.0 ms", "0.2 ms"]
    assert labels(ticks(12.5, 83.2), "tok/s") == ["0 tok/s", "20 tok/s", "40 tok/s",
                                                  "60 tok/s", "80 tok/s", "100 tok/s"]
    assert ticks(0.1 - 1e-16, 0.1 + 1e-16) == [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]  # equal values
    assert ticks(0.0, 0.0)[0] < 0 < ticks(0.0, 0.0)[-1]
    assert labels(ticks(0, 1234), "") == ["0", "250", "500", "750", "1000", "1250"]


def test_bad_out_and_missing_extra(db: Path, tmp_path: Path) -> None:
    res = run("plot", "--db", str(db), "--out", str(tmp_path / "x.pdf"))
    assert res.exit_code == 2 and "--out expects a .html, .png or .svg" in res.output
    with pytest.raises(UsageError, match=r"pip install 'lkmetrics\[plots\]'"):
        need("no_such_plotting_module")
