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


def seconds(cmd: list[str]) -> float:
    """Wall time of one run of ``cmd``."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    seconds(HELP), seconds(FLOOR)  # warm the file cache and the bytecode
    # interleaved, so a busy moment of the machine falls on both
    pairs = [(seconds(FLOOR), seconds(HELP)) for _ in range(runs)]
    floor = statistics.median(f for f, _ in pairs)
    help_ = statistics.median(h for _, h in pairs)
    print(f"import typer.main, typer.rich_utils: {floor:.3f} s (median of {runs})")
    print(f"lkmetrics --help:                    {help_:.3f} s (median of {runs})")
    print(f"ratio: {help_ / floor:.2f}x (target <= 1.20x)")


if __name__ == "__main__":
    main()
