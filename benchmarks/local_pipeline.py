"""Stage latencies and peak memory of the all-local voice pipeline (Whisper, SmolLM2, Piper).

    python benchmarks/local_pipeline.py [--turns 4] [--pause 0.5] [--keep FILE]
    python benchmarks/local_pipeline.py --busy 1 [--concurrency 1,2,4]

Runs ``lkmetrics simulate --local`` as a child process, the way a user would: the built-in
script of three spoken questions, repeated ``--turns`` times (4: twelve turns), no greeting,
nothing recorded in the store, every record written as JSON lines to a file. Then prints the
p50 and p95 of each stage, as ``lkmetrics report`` computes them (``lkmetrics.figures``: the
same figure definitions and the same percentile), the peak memory of the processes and the
command that reproduces the run:

    EOU delay        eou.end_of_utterance_delay
    STT duration     stt.duration
    LLM first token  llm.ttft
    TTS first byte   tts.ttfb
    turn e2e         turn.e2e_latency

Peak memory: the max RSS of the lkmetrics process (``ru_maxrss`` of RUSAGE_CHILDREN after it
exits; Linux reports the largest process of the tree it waited for, so this covers the
llama.cpp server too) and, polled from /proc while the run lasts, each process's own peak
(VmHWM): lkmetrics itself (Whisper, Piper, VAD and the agent session) and the llama.cpp
server, a grandchild started by lkmetrics. Needs ``lkmetrics[local]``; no keys, no network.
A benchmark, not a test: the local models are slow on a small machine, and a run takes a few
minutes.

``--busy N`` runs everything twice, quiet and then with N cores kept busy by spinning processes
that the benchmark starts and stops itself, and prints the two side by side with the ratio of
the p50s (a CI runner is small and busy: the targets are e2e p50 within 1.3x of quiet, e2e p95
within 1.5x of its p50, LLM TTFT p95 under 1 s). ``--concurrency 1,2,4`` also runs ``lkmetrics
bench voice --local`` at those caller counts, in each condition, and prints how many turns were
answered of those asked.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lkmetrics.figures import FIGURES_BY_NAME, figure_value, percentile

# (label, figure in lkmetrics.figures, the record field it reads)
STAGES = (
    ("EOU delay", "eou.delay", "eou.end_of_utterance_delay"),
    ("STT duration", "stt.duration", "stt.duration"),
    ("LLM first token", "llm.ttft", "llm.ttft"),
    ("TTS first byte", "tts.ttfb", "tts.ttfb"),
    ("first sentence", "turn.first_sentence", "turn.stages.first_sentence"),
    ("turn e2e", "e2e", "turn.e2e_latency"),
    ("heard latency", "heard", "turn.heard_latency"),
)
MIN_TURNS = 10
SERVER_LINE = re.compile(r"local LLM server at (\S+), pid (\d+)")


def command(output: Path, turns: int, pause: float, python: str = sys.executable) -> list[str]:
    return [
        python, "-m", "lkmetrics", "simulate", "--local",
        "--turns", str(turns), "--pause", str(pause), "--no-greet",
        "--instructions", "Answer in one short sentence.",
        "--format", "json", "--no-record", "--output", str(output),
    ]  # fmt: skip


def vm_hwm_mb(pid: int) -> float | None:
    """A process's peak resident set size so far (VmHWM), in MB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(m.group(1)) / 1024 if m else None


class PeakWatcher:
    """Polls the VmHWM of some pids until stopped; keeps the last value seen of each."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self._poll()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        for name, pid in list(self.pids.items()):
            mb = vm_hwm_mb(pid)
            if mb is not None:  # VmHWM only grows: the last reading is the best
                self.peaks[name] = max(mb, self.peaks.get(name, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()


def stage_values(records: list[dict[str, object]]) -> dict[str, list[float]]:
    """Each stage's values, sorted, read with lkmetrics.figures.figure_value."""
    out: dict[str, list[float]] = {}
    for _, name, _ in STAGES:
        figure = FIGURES_BY_NAME[name]
        out[name] = sorted(
            v for r in records if (v := figure_value(figure, r)) is not None
        )
    return out


@dataclass
class Run:
    """One ``simulate --local`` run: its records, wall time, exit code and peak memory."""

    records: list[dict[str, object]]
    wall: float
    code: int
    stderr: list[str]
    peaks: dict[str, float] = field(default_factory=dict)
    children_peak: float = 0.0

    @property
    def turns(self) -> int:
        return sum(1 for r in self.records if r.get("kind") == "turn")


def simulate(output: Path, turns: int, pause: float) -> Run:
    """Runs ``lkmetrics simulate --local`` once, watching its memory."""
    output.unlink(missing_ok=True)  # --output appends
    cmd = command(output, turns, pause)
    print(f"running: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    watcher = PeakWatcher()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watcher.watch("lkmetrics", proc.pid)
    watcher.start()
    assert proc.stderr is not None
    stderr: list[str] = []
    for line in proc.stderr:  # until the child exits
        stderr.append(line)
        m = SERVER_LINE.search(line)
        if m:
            watcher.watch("llama.cpp server", int(m.group(2)))
    code = proc.wait()
    wall = time.perf_counter() - t0
    watcher.stop()
    if code != 0:
        sys.stderr.write("".join(stderr[-30:]))
        print(f"lkmetrics simulate exited with code {code}", file=sys.stderr)
    records = [json.loads(line) for line in output.read_text().splitlines() if line.strip()] \
        if output.exists() else []
    return Run(records, wall, code, stderr, dict(watcher.peaks),
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def bench_voice(levels: str, repeat: int) -> dict[int, tuple[int, int]]:
    """``lkmetrics bench voice --local --concurrency LEVELS``: turns answered and asked per
    caller count (answered = asked - failed)."""
    cmd = [sys.executable, "-m", "lkmetrics", "bench", "voice", "--local", "--concurrency",
           levels, "--repeat", str(repeat), "--format", "json", "--no-record"]
    print(f"running: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        sys.stderr.write(proc.stderr[-3000:])
        return {}
    return {int(r["concurrency"]): (int(r["turns"]) - int(r["errors"]), int(r["turns"]))
            for r in doc["runs"]}


class Busy:
    """N processes spinning on a core each, for as long as the ``with`` block lasts."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Busy:
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def p50_p95(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return percentile(values, 50), percentile(values, 95)


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def print_one(run: Run) -> None:
    values = stage_values(run.records)
    print(f"{run.turns} turns in {run.wall:.0f} s (lkmetrics simulate --local, "
          f"{os.cpu_count()} CPUs)")
    print()
    print(f"{'stage':<16} {'field':<28} {'n':>3} {'p50 ms':>8} {'p95 ms':>8}")
    for label, name, field_name in STAGES:
        vs = values[name]
        pp = p50_p95(vs)
        print(f"{label:<16} {field_name:<28} {len(vs):>3} {ms(pp and pp[0]):>8} "
              f"{ms(pp and pp[1]):>8}")
    print()
    print(f"peak memory, lkmetrics process tree (ru_maxrss of children): "
          f"{run.children_peak:.0f} MB")
    for name in ("lkmetrics", "llama.cpp server"):
        peak = run.peaks.get(name)
        shown = f"{peak:.0f} MB" if peak is not None else "not seen"
        print(f"peak memory, {name} alone (VmHWM, polled): {shown}")


def print_side_by_side(quiet: Run, busy: Run, n: int) -> None:
    qv, bv = stage_values(quiet.records), stage_values(busy.records)
    print(f"quiet: {quiet.turns} turns in {quiet.wall:.0f} s; {n} core(s) busy: {busy.turns} "
          f"turns in {busy.wall:.0f} s ({os.cpu_count()} CPUs)")
    print()
    print(f"{'stage':<16} {'quiet p50':>9} {'p95':>6} {'busy p50':>9} {'p95':>6} "
          f"{'p50 x':>6}   (ms)")
    for label, name, _ in STAGES:
        q, b = p50_p95(qv[name]), p50_p95(bv[name])
        ratio = f"{b[0] / q[0]:.2f}" if q and b and q[0] > 0 else "-"
        print(f"{label:<16} {ms(q and q[0]):>9} {ms(q and q[1]):>6} {ms(b and b[0]):>9} "
              f"{ms(b and b[1]):>6} {ratio:>6}")
    print()
    e2e = p50_p95(bv["e2e"])
    ttft = p50_p95(bv["llm.ttft"])
    qe2e = p50_p95(qv["e2e"])
    if e2e and qe2e and ttft:
        print("targets, one core busy: "
              f"e2e p50 {e2e[0] / qe2e[0]:.2f}x quiet (<= 1.3), "
              f"e2e p95 {e2e[1] / e2e[0]:.2f}x its p50 (<= 1.5), "
              f"LLM TTFT p95 {ttft[1]:.2f} s (<= 1)")


def print_completion(results: dict[str, dict[int, tuple[int, int]]]) -> None:
    print()
    print("bench voice --local: turns answered / asked")
    for condition, by_level in results.items():
        cells = ", ".join(f"{level} caller(s) {a}/{t}" for level, (a, t) in sorted(
            by_level.items())) or "no result (see stderr)"
        print(f"  {condition:<8} {cells}")


def main() -> int:
    # SIGTERM ends the benchmark as Ctrl-C does: the with-blocks stop the spinning processes
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=4,
                        help="repeat the 3-question script N times (default 4: 12 turns)")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds of silence between turns (default 0.5)")
    parser.add_argument("--keep", type=Path, metavar="FILE",
                        help="write the JSON lines here and keep them (the quiet run's)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="also run with N cores kept busy, and compare (default 0: quiet)")
    parser.add_argument("--concurrency", metavar="LEVELS",
                        help="also run bench voice --local at these caller counts, e.g. 1,2,4")
    ns = parser.parse_args()
    if ns.busy < 0 or (ns.busy and ns.busy > (os.cpu_count() or 1)):
        parser.error(f"--busy expects 0..{os.cpu_count()} cores")

    completion: dict[str, dict[int, tuple[int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="lkmetrics-local-") as tmp:
        quiet = simulate(ns.keep or Path(tmp) / "quiet.jsonl", ns.turns, ns.pause)
        if ns.concurrency:
            completion["quiet"] = bench_voice(ns.concurrency, 1)
        busy = None
        if ns.busy:
            with Busy(ns.busy):
                busy = simulate(Path(tmp) / "busy.jsonl", ns.turns, ns.pause)
                if ns.concurrency:
                    completion[f"{ns.busy} busy"] = bench_voice(ns.concurrency, 1)

    if busy is None:
        print_one(quiet)
    else:
        print_side_by_side(quiet, busy, ns.busy)
    if completion:
        print_completion(completion)
    print()
    print(f"reproduce: {shlex.join(command(Path('records.jsonl'), ns.turns, ns.pause, 'python'))}")
    runs = [quiet] + ([busy] if busy else [])
    for run in runs:
        if run.code != 0:
            return run.code
        if run.turns < MIN_TURNS and ns.turns * 3 >= MIN_TURNS:
            print(f"only {run.turns} turns completed (expected at least {MIN_TURNS})",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
