"""Whether a record can be stored: one validator for import, the recorder and migrations.

A record is stored only if it reads back identically and every command can read it: the
envelope is complete, times and the integers it reads are within range, floats are finite,
strings are valid Unicode, and the fields lkmetrics reads (figures, tokens, model metadata, session
fields) have the types it expects. :func:`problem` gives the reason a record cannot be
stored, or None.

Two levels, so the import's hot loop stays fast. :func:`known_fields_problem` checks the
envelope ranges and known fields only; that is enough for a record parsed by orjson, which
already refuses non-finite numbers and lone surrogates.
:func:`problem` adds a walk over every value, for records parsed any other way.
"""

from __future__ import annotations

import math
from typing import Any

from lkmetrics.figures import FIGURES
from lkmetrics.records import DYNAMICS_FIELDS, SCHEMA_VERSION, TURN_FIELDS

INT64_MAX = 2**63 - 1  # SQLite's INTEGER range
# record times are Unix seconds between 1970 and the end of year 9999 (what dates can show)
TIME_MAX = 253_402_300_799.0
# token counts: summing a million of them can neither overflow SQLite nor lose precision
TOKEN_MAX = 2**40
MAX_DEPTH = 900  # nesting of objects and arrays (json.loads itself stops near 1000)

_NUM_OR_NONE = (int, float, type(None))
_STR_OR_NONE = (str, type(None))
_INT_OR_NONE = (int, type(None))
COMPONENT_KINDS = frozenset({"llm", "stt", "tts", "realtime", "vad", "eou", "eot"})
SESSION_TEXT_FIELDS = ("command", "stt", "llm", "tts", "voice", "host", "lkmetrics_version",
                       "livekit_agents_version", "llm_base_url", "room")
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Unstorable(ValueError):
    """Raised by a parser for a line that is JSON but cannot be stored (the reason)."""


def _known_types() -> dict[str, tuple[tuple[str, tuple[type, ...]], ...]]:
    """kind -> (field, allowed types) of every field lkmetrics reads from that kind."""
    out: dict[str, list[tuple[str, tuple[type, ...]]]] = {}
    for f in FIGURES:
        out.setdefault(f.kind, []).append((f.field, _NUM_OR_NONE))
    for kind in COMPONENT_KINDS:
        out.setdefault(kind, []).append(("label", _STR_OR_NONE))
    out["turn"] = [(name, _NUM_OR_NONE) for name in (*TURN_FIELDS, *DYNAMICS_FIELDS)] + [
        ("turn", _INT_OR_NONE), ("user_text", _STR_OR_NONE), ("agent_text", _STR_OR_NONE)]
    out["session"] = [(name, _STR_OR_NONE) for name in SESSION_TEXT_FIELDS] + [
        ("turns", _INT_OR_NONE), ("pid", _INT_OR_NONE)]
    out["usage"] = [("usage", (list, type(None)))]
    out["summary"] = [("figures", (dict, type(None))), ("tokens", (dict, type(None))),
                      ("usage", (list, type(None)))]
    return {k: tuple(v) for k, v in out.items()}


KNOWN_TYPES = _known_types()


def envelope_problem(record: Any) -> str | None:
    """Why the envelope (session_id, seq, kind, time, schema) is unusable, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    sid = record.get("session_id")
    if not isinstance(sid, str) or not sid:
        return "no session_id"
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= INT64_MAX:
        return "no integer seq (0 to 2^63-1)"
    kind = record.get("kind")
    if not isinstance(kind, str) or not kind:
        return "no kind"
    t = record.get("time")
    if not isinstance(t, int | float) or isinstance(t, bool):
        return "no numeric time"
    if isinstance(t, float) and not math.isfinite(t):
        return "no numeric time"
    if not 0 <= t <= TIME_MAX:
        return f"time {t!r} is not a Unix time between 1970 and 9999"
    schema = record.get("schema", SCHEMA_VERSION)
    if schema is not None and (not isinstance(schema, int) or isinstance(schema, bool)):
        return "schema is not an integer"
    if isinstance(schema, int) and schema > SCHEMA_VERSION:
        return f"record schema {schema} is newer than this lkmetrics reads ({SCHEMA_VERSION})"
    return None


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def known_fields_problem(record: dict[str, Any], kind: str) -> str | None:
    """Why a known field of a record (envelope already checked) has an unusable value."""
    get = record.get
    if kind == "llm":  # one reason for a float or a huge count (orjson reads 2^70 as a float)
        for name in TOKEN_FIELDS:
            n = get(name)
            if n is not None and (type(n) is not int or not 0 <= n <= TOKEN_MAX):
                return f"{name} is not a token count (an integer from 0 to 2^40)"
    for name, allowed in KNOWN_TYPES.get(kind, ()):
        value = get(name)
        if type(value) not in allowed:  # bool is not an int here
            return f"{name} is {_type_name(value)}"
    if "metadata" in record:  # any kind: a record without a session falls back to its own
        meta = record["metadata"]
        if meta is not None:
            if type(meta) is not dict:
                return f"metadata is {_type_name(meta)}"
            for name in ("model_name", "model_provider"):
                if type(meta.get(name)) not in _STR_OR_NONE:
                    return f"metadata.{name} is {_type_name(meta.get(name))}"
    if kind in _COUNTED:
        for name in _COUNTED[kind]:
            n = get(name)
            if type(n) is int and not 0 <= n <= INT64_MAX:
                return f"{name} {n} is out of range"
    return None


_COUNTED = {"turn": ("turn",), "session": ("turns", "pid")}  # integers lkmetrics reads


def value_problem(value: Any, depth: int = 0) -> str | None:
    """Why a JSON value would not round-trip (non-finite, invalid Unicode, too deep)."""
    t = type(value)
    if t is str:
        return _text_problem(value)
    if t is float:
        return None if math.isfinite(value) else "a number is not finite (NaN or Infinity)"
    if t is int:  # any size json.loads reads (the ones lkmetrics reads are bounded)
        return None
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if t is dict:
        for k, v in value.items():
            reason = _text_problem(k) or value_problem(v, depth + 1)
            if reason:
                return reason
    elif t is list:
        for v in value:
            reason = value_problem(v, depth + 1)
            if reason:
                return reason
    return None


def _text_problem(s: str) -> str | None:
    if s.isascii():
        return None
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "a string is not valid Unicode (a lone surrogate)"
    return None


def problem(record: Any) -> str | None:
    """Why ``record`` cannot be stored (a short reason), or None when it can."""
    return (envelope_problem(record)
            or known_fields_problem(record, record["kind"])
            or value_problem(record))
