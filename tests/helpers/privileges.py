"""Running the real CLI as a process that file modes bind: this machine's tests run as root,
and root ignores read-only files and folders, so a test of a read-only store drops that first."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from tests.helpers.common import ROOT

NOBODY = 65534


def unprivileged_env() -> dict[str, str]:
    """PYTHONPATH for an interpreter that is not the test's own: this checkout and the
    test interpreter's packages."""
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}


@cache
def unprivileged_python() -> tuple[list[str], str] | None:
    """An argv prefix running Python (lkmetrics importable) as a process that cannot write a
    read-only file or folder, and how: the test's own user when it is not root; else user
    nobody (through the test's interpreter, or the system one of the same version when the
    test's lives where nobody may not go); else root without its capabilities (root without
    CAP_DAC_OVERRIDE obeys file modes). None when none of them works."""
    if os.geteuid() != 0:
        return [sys.executable], f"uid {os.geteuid()}"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    nobody = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [(nobody + [sys.executable], "user nobody")]
    if (system := shutil.which(version, path="/usr/bin:/usr/local/bin")) is not None:
        candidates.append((nobody + [system], f"user nobody ({system})"))
    candidates.append(([setpriv, "--bounding-set=-all", "--inh-caps=-all", sys.executable],
                       "root without capabilities"))
    with tempfile.TemporaryDirectory() as probe_dir:
        locked = Path(probe_dir)
        locked.chmod(0o555)
        try:
            for argv, how in candidates:
                if _binds(argv, locked):
                    return argv, how
        finally:
            locked.chmod(0o700)
    return None


def _binds(argv: list[str], locked: Path) -> bool:
    """Whether this interpreter imports lkmetrics and is refused writing to ``locked``."""
    code = ("import sys, typer, lkmetrics.cli\n"
            "try:\n    open(sys.argv[1] + '/x', 'w')\nexcept PermissionError:\n"
            "    sys.exit(0)\nsys.exit(3)\n")
    try:
        done = subprocess.run([*argv, "-c", code, str(locked)], capture_output=True,
                              env={**os.environ, **unprivileged_env()}, timeout=60,
                              cwd="/")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
