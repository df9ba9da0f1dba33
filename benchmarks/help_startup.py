"""``lkmetrics --help`` loads only what help needs: its wall time against the floor of
``python -c "import typer.main, typer.rich_utils"`` (what any Typer+Rich help costs).

    python benchmarks/help_startup.py [--runs 15]

Prints the median of each and their ratio; the target is at most 1.2x.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HELP = [sys.executable, "-m", "lkmetrics", "--help"]
FLOOR = [sys.executable, "-c", "import typer.main, typer.rich_utils"]


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    median_seconds(HELP, 2)  # warm the file cache and the bytecode
    # interleave, so a busy moment of the machine falls on both
    helps, floors = [], []
    for _ in range(args.runs):
        floors.append(median_seconds(FLOOR, 1))
        helps.append(median_seconds(HELP, 1))
    floor, help_ = statistics.median(floors), statistics.median(helps)
    print(f"import typer.main, typer.rich_utils: {floor:.3f} s (median of {args.runs})")
    print(f"lkmetrics --help:                    {help_:.3f} s (median of {args.runs})")
    print(f"ratio: {help_ / floor:.2f}x (target <= 1.20x)")


if __name__ == "__main__":
    main()
