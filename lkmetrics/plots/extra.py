"""The ``plots`` extra: a missing library is a one-line error naming the install command."""

from __future__ import annotations

import importlib.util
import shlex
import sys

from lkmetrics.errors import UsageError


def need(module: str) -> None:
    """Raise a one-line UsageError unless ``module`` (of the plots extra) can be imported."""
    if importlib.util.find_spec(module) is None:
        py = shlex.quote(sys.executable)
        raise UsageError(
            f"this chart needs {module}, from the plots extra: "
            f"{py} -m pip install 'lkmetrics[plots]' (or bash scripts/install.sh)."
        )
