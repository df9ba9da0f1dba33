"""The app directory (``LKMETRICS_HOME``): where the store, logs and cached speech live."""

from __future__ import annotations

import os
from pathlib import Path


def app_dir() -> Path:
    """The app directory: $LKMETRICS_HOME, else typer's per-user app dir."""
    home = os.environ.get("LKMETRICS_HOME")
    if home:
        return Path(home)
    import typer

    return Path(typer.get_app_dir("lkmetrics"))
