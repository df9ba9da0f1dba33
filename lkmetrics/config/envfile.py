"""``.env`` (or ``--env-file``) read into the environment; what is set already wins."""

from __future__ import annotations

from pathlib import Path

from lkmetrics.errors import UsageError


def load_env_file(path: Path | None) -> Path | None:
    """Load ``path`` (explicit: must exist) or ``./.env`` (optional) into the environment.

    Variables already set in the environment win over the file.
    """
    if path is not None:
        if not path.is_file():
            raise UsageError(
                f"--env-file {path} does not exist; create it (see .env.example) "
                "or leave the option out to read ./.env."
            )
        _load_dotenv(path, "--env-file " + str(path))
        return path
    default = Path(".env")
    if default.is_file():
        _load_dotenv(default, "./.env")
        return default
    return None


def _load_dotenv(path: Path, what: str) -> None:
    """Load a .env file that must be UTF-8 text (a binary file is a usage error)."""
    from dotenv import load_dotenv

    from lkmetrics.safety import read_bytes

    data = read_bytes(path, what.split(" ")[0], max_bytes=1024 * 1024)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not a text file (not UTF-8); pass a .env file of "
                         "NAME=value lines (see .env.example).") from None
    if "\x00" in text:
        raise UsageError(f"{what} is not a text file (it holds NUL bytes); pass a .env file "
                         "of NAME=value lines (see .env.example).")
    import io

    load_dotenv(stream=io.StringIO(text), override=False)
