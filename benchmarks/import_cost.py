"""What ``import lkmetrics`` adds to an agent, beside ``import livekit.agents``.

Each figure is the median wall time of a fresh interpreter running one import (minus an empty
interpreter's start-up), and ``-X importtime``'s cumulative time of the ``lkmetrics`` package
itself. An agent that calls ``lkmetrics.instrument`` pays for the writers it asks for on the
first call (in the job process, once), not at import.

    python benchmarks/import_cost.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CODES = {"empty": "pass", "livekit": "import livekit.agents", "lkmetrics": "import lkmetrics",
         "both": "import livekit.agents, lkmetrics"}


def wall(runs: int) -> dict[str, float]:
    """Median wall seconds per snippet; the snippets take turns, so a busy moment of the
    machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in CODES}
    for _ in range(runs):
        for name, code in CODES.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def importtime(code: str, module: str, runs: int) -> float:
    """``-X importtime``'s cumulative microseconds for ``module`` in ``code`` (median)."""
    values = []
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                             capture_output=True, text=True, check=True).stderr
        for line in err.splitlines():
            parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] == module:
                values.append(int(parts[1]))
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    medians = wall(args.runs)
    empty = medians["empty"]
    lk, ours, both = (medians[k] - empty for k in ("livekit", "lkmetrics", "both"))
    print(f"python start-up (subtracted below): {empty * 1000:.0f} ms")
    print(f"import livekit.agents:            {lk * 1000:7.1f} ms")
    print(f"import lkmetrics:                 {ours * 1000:7.1f} ms")
    print(f"import livekit.agents, lkmetrics: {both * 1000:7.1f} ms "
          f"(lkmetrics adds {(both - lk) * 1000:+.1f} ms)")
    alone = importtime("import lkmetrics", "lkmetrics", args.runs)
    after = importtime("import livekit.agents, lkmetrics", "lkmetrics", args.runs)
    print(f"-X importtime of the lkmetrics package: {alone / 1000:.2f} ms alone, "
          f"{after / 1000:.2f} ms after livekit.agents (what an agent pays)")


if __name__ == "__main__":
    main()
