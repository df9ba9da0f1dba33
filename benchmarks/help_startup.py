"""``lkmetrics --help`` loads only what help needs: its wall time against the floor of
``python -c "import typer.main, typer.rich_utils"`` (what any Typer+Rich help costs).

    python benchmarks/help_startup.py [--runs 20] [--only editable|plain]

Both run this tree's lkmetrics (PYTHONPATH is set to it), under two interpreters:

- ``editable``: this Python as it is, which in a development install also runs setuptools'
  editable-install finder (a ``.pth`` file) at every start-up;
- ``plain``: a throw-away virtualenv whose site-packages points at this Python's, without
  running its ``.pth`` files, as a regular (non-editable) install starts.

Python's bytecode cache is on for both (in a temporary PYTHONPYCACHEPREFIX), as an installed
package has it, even where PYTHONDONTWRITEBYTECODE is set: without it every lkmetrics module is
compiled from source at each start-up, while Typer's and Rich's come precompiled from
site-packages. ``--no-bytecode`` measures as the environment is.

Prints the median of each over ``--runs`` interleaved runs and their ratio; the target is at
most 1.2x.
"""

from __future__ import annotations

import argparse
import os
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.2


def seconds(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of one run of ``cmd``."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def plain_python(directory: str) -> str:
    """A virtualenv in ``directory`` that sees this Python's packages but runs none of its
    ``.pth`` files (so no editable-install finder); returns its interpreter."""
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(directory)
    python = Path(directory) / "bin" / "python"
    code = "import site; print(site.getsitepackages()[0])"
    own = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    # a .pth line that names a directory adds it to sys.path; its own .pth files do not run
    Path(own, "lkmetrics-bench.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return str(python)


def measure(python: str, runs: int, pycache: str | None) -> tuple[float, float]:
    """Median seconds of the floor and of ``lkmetrics --help`` under ``python``; bytecode is
    cached in ``pycache`` (None: as the environment says)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    help_ = [python, "-m", "lkmetrics", "--help"]
    floor = [python, "-c", "import typer.main, typer.rich_utils"]
    seconds(help_, env), seconds(floor, env)  # warm the file cache and the bytecode
    # interleaved, so a busy moment of the machine falls on both
    pairs = [(seconds(floor, env), seconds(help_, env)) for _ in range(runs)]
    return statistics.median(f for f, _ in pairs), statistics.median(h for _, h in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", choices=("editable", "plain"))
    parser.add_argument("--no-bytecode", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE as it is (no bytecode cache)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lkmetrics-help-") as tmp:
        pythons = {"editable": sys.executable}
        if args.only != "editable":
            pythons["plain"] = plain_python(tmp)
        for name, python in pythons.items():
            if args.only and name != args.only:
                continue
            pycache = None if args.no_bytecode else str(Path(tmp) / "pycache")
            floor, help_ = measure(python, args.runs, pycache)
            ratio = help_ / floor
            print(f"{name}: import typer.main, typer.rich_utils {floor:.3f} s, "
                  f"lkmetrics --help {help_:.3f} s (medians of {args.runs}): "
                  f"{ratio:.2f}x (target <= {TARGET:.2f}x{'' if ratio <= TARGET else ', OVER'})")


if __name__ == "__main__":
    main()
