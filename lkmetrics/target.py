"""``--agent TARGET`` read without importing anything: a ``.py`` file or a dotted module, and
an optional NAME (bad input fails before livekit loads). Importing it is
:mod:`lkmetrics.agent.user`'s job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lkmetrics.errors import UsageError

EXAMPLE = "agent.py, agent.py:server or my_package.agent:server"


@dataclass(frozen=True)
class Target:
    """TARGET as given: a file (``path``) or a module (``module``), and an optional NAME."""

    spec: str
    path: Path | None
    module: str | None
    name: str | None


def _split_name(spec: str) -> tuple[str, str | None]:
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return spec, None


def parse_target(spec: str) -> Target:
    """TARGET checked: an existing ``.py`` file or a dotted module name, and NAME."""
    text = spec.strip()
    if not text:
        raise UsageError(f"--agent expects a TARGET such as {EXAMPLE} (got {spec!r}).")
    where, name = _split_name(text)
    if where.endswith(".py") or "/" in where or "\\" in where or Path(where).exists():
        path = Path(where)
        if not path.exists():
            raise UsageError(f"--agent {where}: no such file.")
        if path.is_dir():
            raise UsageError(f"--agent {where} is a directory; name the agent's .py file, "
                             f"e.g. {where.rstrip('/')}/agent.py.")
        if path.suffix != ".py":
            raise UsageError(f"--agent {where} is not a Python file (.py).")
        if not path.is_file():  # a FIFO would block the import for ever, a device never end
            raise UsageError(f"--agent {where} is not a regular file (a pipe or a device "
                             "cannot be imported); name the agent's .py file.")
        return Target(spec, path.resolve(), None, name)
    if not all(part.isidentifier() for part in where.split(".")):
        raise UsageError(f"--agent expects a .py file or a module name, e.g. {EXAMPLE} "
                         f"(got {spec!r}).")
    return Target(spec, None, where, name)
