"""Stage latencies and peak memory of the all-local voice pipeline (Whisper, SmolLM2, Piper).

    python benchmarks/local_pipeline.py [--turns 4] [--pause 0.5] [--keep FILE]

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
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lkmetrics.figures import FIGURES_BY_NAME, figure_value, percentile

# (label, figure in lkmetrics.figures, the record field it reads)
STAGES = (
    ("EOU delay", "eou.delay", "eou.end_of_utterance_delay"),
    ("STT duration", "stt.duration", "stt.duration"),
    ("LLM first token", "llm.ttft", "llm.ttft"),
    ("TTS first byte", "tts.ttfb", "tts.ttfb"),
    ("turn e2e", "e2e", "turn.e2e_latency"),
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=4,
                        help="repeat the 3-question script N times (default 4: 12 turns)")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds of silence between turns (default 0.5)")
    parser.add_argument("--keep", type=Path, metavar="FILE",
                        help="write the JSON lines here and keep them")
    ns = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lkmetrics-local-") as tmp:
        output = ns.keep or Path(tmp) / "records.jsonl"
        output.unlink(missing_ok=True)  # --output appends
        cmd = command(output, ns.turns, ns.pause)
        print(f"running: {shlex.join(cmd)}", file=sys.stderr, flush=True)
        watcher = PeakWatcher()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
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
        children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if code != 0:
            sys.stderr.write("".join(stderr[-30:]))
            print(f"lkmetrics simulate exited with code {code}", file=sys.stderr)
        records = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]

    values = stage_values(records)
    turns = sum(1 for r in records if r.get("kind") == "turn")
    print(f"{turns} turns in {wall:.0f} s (lkmetrics simulate --local, {os.cpu_count()} CPUs)")
    print()
    print(f"{'stage':<16} {'field':<28} {'n':>3} {'p50 ms':>8} {'p95 ms':>8}")
    for label, name, field in STAGES:
        vs = values[name]
        if vs:
            p50, p95 = percentile(vs, 50) * 1000, percentile(vs, 95) * 1000
            print(f"{label:<16} {field:<28} {len(vs):>3} {p50:>8.0f} {p95:>8.0f}")
        else:
            print(f"{label:<16} {field:<28} {0:>3} {'-':>8} {'-':>8}")
    print()
    print(f"peak memory, lkmetrics process tree (ru_maxrss of children): {children_peak:.0f} MB")
    for name in ("lkmetrics", "llama.cpp server"):
        peak = watcher.peaks.get(name)
        shown = f"{peak:.0f} MB" if peak is not None else "not seen"
        print(f"peak memory, {name} alone (VmHWM, polled): {shown}")
    print()
    print(f"reproduce: {shlex.join(command(Path('records.jsonl'), ns.turns, ns.pause, 'python'))}")
    if code != 0:
        return code
    if turns < MIN_TURNS and ns.turns * 3 >= MIN_TURNS:
        print(f"only {turns} turns completed (expected at least {MIN_TURNS})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
