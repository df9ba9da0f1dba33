"""``--scenario FILE``: a scripted conversation in a small TOML file, one ``[[turn]]`` table per
line the caller says (``say = "..."``, or ``wav = "file.wav"`` with ``words = "..."``), each with
its own optional steps (``barge_in``, ``backchannel``, ``pause_mid``, ``pause``). Parsed and
validated here, before anything loads; every error is one UsageError line naming the file and
the line. No livekit import (docs/scenario.md describes the format)."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lkmetrics.errors import UsageError
from lkmetrics.simulate.script import BUILTIN_SCRIPT, MAX_BEHAVIOUR_SECONDS, Behaviour

LINE_KEYS = ("say", "wav", "words")
STEPS = ("barge_in", "backchannel", "pause_mid", "pause")
MAX_TURNS = 10_000  # each turn holds its audio in memory
MAX_BYTES = 1_000_000  # a scenario is a few lines of text
if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as the tomli package (a dependency there)
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

_HEADER = re.compile(r"^\s*\[\[\s*turn\s*\]\]")
_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


@dataclass(frozen=True)
class ScenarioTurn:
    """One line of the scenario: what is said (text for the local voice, or a WAV and its
    words) and how (its steps; None: the command line's, or none)."""

    line: int  # where its [[turn]] header is in the file
    say: str | None = None
    wav: Path | None = None  # resolved against the scenario file's folder
    words: str | None = None
    behaviour: Behaviour = Behaviour()
    pause: float | None = None  # seconds of silence after its reply (None: --pause)

    @property
    def text(self) -> str | None:
        """The words the caller speaks, when known (stt.wer compares against them)."""
        return self.say if self.say is not None else self.words


class _Where:
    """Line numbers of the raw text: the i-th ``[[turn]]`` header and a key inside it."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.headers = [i + 1 for i, raw in enumerate(self.lines) if _HEADER.match(raw)]

    def turn(self, index: int) -> int | None:
        return self.headers[index] if index < len(self.headers) else None

    def key(self, key: str, index: int | None = None) -> int | None:
        """The line of ``key = ...`` in turn ``index`` (None: before the first turn)."""
        if index is None:
            lo, hi = 0, self.headers[0] - 1 if self.headers else len(self.lines)
        else:
            start = self.turn(index)
            if start is None:
                return None
            lo = start
            hi = self.headers[index + 1] - 1 if index + 1 < len(self.headers) else len(self.lines)
        pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})"
                             r"\s*=")
        for i in range(lo, hi):
            if pattern.match(self.lines[i]):
                return i + 1
        return self.turn(index) if index is not None else None

    def error(self, line: int | None, message: str) -> UsageError:
        at = f"{self.path}:{line}" if line is not None else str(self.path)
        return UsageError(f"--scenario {at}: {message}")


def _read(path: Path) -> str:
    where = f"--scenario {path}"
    if not path.exists():
        raise UsageError(f"{where}: no such file (give the path of a TOML scenario file).")
    if not path.is_file():
        raise UsageError(f"{where}: not a regular file (give the path of a TOML scenario "
                         "file).")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UsageError(f"{where}: cannot be read ({e.strerror or e}).") from None
    if len(raw) > MAX_BYTES:
        raise UsageError(f"{where}: larger than {MAX_BYTES:,} bytes; a scenario is a few "
                         "lines of text.")
    try:  # a byte order mark (Windows editors write one) is not part of the text
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UsageError(f"--scenario {path}:{line}: not UTF-8 text (a TOML file is "
                         "UTF-8).") from None


def _seconds(where: _Where, index: int, key: str, value: Any, *, zero_ok: bool) -> float:
    line = where.key(key, index)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(line, f"{key} takes seconds, a number (got {value!r}).")
    seconds = float(value)
    low = "at least 0" if zero_ok else "above 0"
    if not (math.isfinite(seconds) and (seconds >= 0 if zero_ok else seconds > 0)
            and seconds <= MAX_BEHAVIOUR_SECONDS):
        raise where.error(line, f"{key} takes seconds {low} and at most "
                                f"{MAX_BEHAVIOUR_SECONDS:g} (got {value!r}).")
    return seconds


def _text(where: _Where, index: int, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(where.key(key, index),
                          f"{key} takes some words in quotes (got {value!r}).")
    return value.strip()


def _turn(where: _Where, index: int, table: Any) -> ScenarioTurn:
    header = where.turn(index)
    if not isinstance(table, dict):
        raise where.error(header, "each turn is a [[turn]] table.")
    for key in table:
        if key not in LINE_KEYS + STEPS:
            raise where.error(where.key(key, index),
                              f"unknown key {key!r} in a turn (a line: say, or wav with "
                              f"words; steps: {', '.join(STEPS)}).")
    if ("say" in table) == ("wav" in table):
        raise where.error(header, "a turn needs exactly one of say = \"some words\" or "
                                  "wav = \"file.wav\".")
    say = wav = words = None
    if "say" in table:
        say = _text(where, index, "say", table["say"])
        if "words" in table:
            raise where.error(where.key("words", index),
                              "words goes with wav (a say line's words are its text).")
    else:
        name = _text(where, index, "wav", table["wav"])
        wav = (where.path.parent / Path(name).expanduser()).resolve()
        if not wav.is_file():
            raise where.error(where.key("wav", index),
                              f"no such WAV file {name!r} ({wav}; a path is relative to the "
                              "scenario file).")
        if "words" in table:
            words = _text(where, index, "words", table["words"])
    steps = {key: _seconds(where, index, key, table[key], zero_ok=key == "pause")
             for key in STEPS if key in table}
    if "barge_in" in steps and "pause" in steps:
        raise where.error(where.key("pause", index),
                          "pause with barge_in: the next line starts over this turn's reply, "
                          "so there is no silence after it to wait (remove one of them).")
    behaviour = Behaviour(steps.get("barge_in"), steps.get("backchannel"),
                          steps.get("pause_mid"))
    return ScenarioTurn(header or 0, say, wav, words, behaviour, steps.get("pause"))


def load_scenario(path: Path) -> list[ScenarioTurn]:
    """The turns of a scenario file, validated (UsageError: one line, file and line)."""
    path = Path(path).expanduser()
    text = _read(path)
    where = _Where(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        at = _AT.search(message)
        line = int(at.group(1)) if at else None
        message = _AT.sub("", message).rstrip(".")
        column = f" (column {at.group(2)})" if at else ""
        raise where.error(line, f"not valid TOML: {message}{column}.") from None
    for key in doc:
        if key != "turn":
            raise where.error(where.key(key), f"unknown key {key!r} (a scenario is a list of "
                                              "[[turn]] tables).")
    tables = doc.get("turn")
    if not isinstance(tables, list) or not tables:
        raise where.error(where.key("turn") if tables is not None else None,
                          "no turns: give one or more [[turn]] tables, each with say = "
                          "\"...\" or wav = \"file.wav\".")
    if len(tables) > MAX_TURNS:
        raise where.error(None, f"more than {MAX_TURNS:,} turns.")
    turns = [_turn(where, i, table) for i, table in enumerate(tables)]
    last = turns[-1]
    if last.behaviour.barge_in is not None:
        raise where.error(where.key("barge_in", len(turns) - 1),
                          "barge_in on the last turn: the caller barges in with its next "
                          "line, and there is none (add a turn after it, or remove the "
                          "step).")
    return turns


def checked_script(scenario: Path | None, say: Sequence[str], repeat: int,
                   behaviour: Behaviour, *, repeat_flag: str | None = "--turns"
                   ) -> list[ScenarioTurn] | None:
    """--scenario's turns, validated with the flags (None: no scenario, the flags' checks
    alone). ``repeat``: how many times the script is said; with a scenario, ``repeat_flag``
    (simulate's --turns) is refused, None allows it (bench voice's --repeat says it again)."""
    if scenario is None:
        behaviour.check((len(say) or len(BUILTIN_SCRIPT)) * repeat, repeat_flag or "--repeat")
        return None
    if say or (repeat_flag is not None and repeat != 1):
        given = "--say" if say else repeat_flag
        raise UsageError(f"--scenario and {given} both say what the caller says: give the "
                         f"lines in the scenario file, or drop --scenario.")
    loaded = load_scenario(scenario)
    behaviour.check(len(loaded) * repeat, repeat_flag or "--repeat")
    return loaded
