"""Record -> row: which columns a record fills, and whether a record can be stored at all.

Each record kind inserts only its own indexed columns (model, figures, tokens), extracted from
the JSON once, on insert, so a report over a million records never parses JSON.
"""

from __future__ import annotations

import math
from typing import Any

from lkmetrics.figures import FIGURE_COLUMNS, STORED_FIGURES, figure_value
from lkmetrics.records import (
    MODEL_KINDS,
    STAGE_OF_KIND,
    Record,
    model_identity,
    stage_identity,
    to_json,
)
from lkmetrics.safety import redact, redact_value
from lkmetrics.store.validate import INT64_MAX, problem

FIGURE_COLUMN_LIST = tuple(dict.fromkeys(FIGURE_COLUMNS.values()))
TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens")
COMPONENT_KINDS = frozenset({"llm", "stt", "tts", "realtime"})

SESSION_FIELDS = (
    "command", "stt", "llm", "tts", "voice", "host", "lkmetrics_version",
    "livekit_agents_version",
)


Row = tuple[Any, ...]
_BASE_COLUMNS = ("session_id", "seq", "kind", "time", "json")




def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    n = int(value)
    return n if -INT64_MAX <= n <= INT64_MAX else None


class KindSpec:
    """The indexed columns of one record kind, and the statements that fill them.

    Each kind inserts only its own columns: binding a dozen NULLs per row would cost more
    than the insert itself at import speed.
    """

    def __init__(self, kind: str) -> None:
        self.figures = [f for f in STORED_FIGURES if f.kind == kind]
        self.component = kind in COMPONENT_KINDS
        self.modelled = kind in MODEL_KINDS  # fills the model column
        self.stage = STAGE_OF_KIND.get(kind, "")
        self.llm = kind == "llm"
        self.fields = tuple((f.field, f) for f in self.figures)
        self.extra: tuple[str, ...] = (
            *(("model",) if self.modelled else ()),
            *(FIGURE_COLUMNS[f.name] for f in self.figures),
            *(TOKEN_COLUMNS if self.llm else ()),
        )
        columns = (*_BASE_COLUMNS, *self.extra)
        self.insert_sql = (
            f"INSERT OR IGNORE INTO records ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        self.update_sql = (
            f"UPDATE records SET {', '.join(f'{c} = ?' for c in self.extra)} WHERE rowid = ?"
        )

    def values(self, record: Record, models: SessionModels | None = None) -> tuple[Any, ...]:
        """The extra column values of ``record``, in the order of ``self.extra``.

        ``models``: the model identities of the record's session, when its opening record
        is known (see :func:`lkmetrics.records.model_identity`).

        A figure column holds :func:`lkmetrics.figures.figure_value` of the record, so reports
        read exactly what a session summary computes. The common cases (a positive float
        figure, an int token count) are taken without a call: at import speed each call
        costs more than the insert of the row.
        """
        get = record.get
        out: list[Any] = []
        if self.modelled:
            found = models.get(self.stage) if models else None
            if found is None:
                found = model_identity(record)
                if found is None and self.component:
                    label = get("label")
                    found = str(label) if label else record["kind"]
            out.append(found)
        for name, figure in self.fields:
            v = get(name)
            out.append(v if type(v) is float and v > 0.0 else figure_value(figure, record))
        if self.llm:
            for name in TOKEN_COLUMNS:
                v = get(name)
                out.append(v if type(v) is int and -INT64_MAX <= v <= INT64_MAX
                           else _int_or_none(v))
        return tuple(out)


_SPECS: dict[str, KindSpec] = {}


def spec(kind: str) -> KindSpec:
    found = _SPECS.get(kind)
    if found is None:
        found = _SPECS[kind] = KindSpec(kind)
    return found


SessionModels = dict[str, str | None]


def session_models(session: Record) -> SessionModels:
    """The model identity of each stage of a session, from its opening record."""
    return {stage: stage_identity(session, stage) for stage in ("llm", "stt", "tts")}


def extract(record: Record, session: Record | None = None) -> dict[str, Any]:
    """The indexed columns (model, figure columns, tokens) that a record fills."""
    ks = spec(str(record.get("kind")))
    models = session_models(session) if session else None
    return dict(zip(ks.extra, ks.values(record, models), strict=True))


def row_of(record: Record, text: str | None = None,
           models: SessionModels | None = None) -> tuple[str, Row]:
    """The insert statement and row of a checked record; ``text``: its JSON, if at hand."""
    ks = spec(record["kind"])
    return ks.insert_sql, (
        record["session_id"], record["seq"], record["kind"], record["time"],
        text if text is not None else to_json(record), *ks.values(record, models),
    )


def check_record(record: Any) -> str | None:
    """Why ``record`` cannot be stored (a short reason), or None when it can."""
    return problem(record)


class SessionTracker:
    """Session rows to upsert with a batch: first/last record time, and the ``session`` record."""

    def __init__(self) -> None:
        self.span: dict[str, list[float]] = {}
        self.info: dict[str, Record] = {}

    def add(self, record: Record) -> None:
        sid = record["session_id"]
        t = float(record["time"])
        span = self.span.get(sid)
        if span is None:
            self.span[sid] = [t, t]
        else:
            if t < span[0]:
                span[0] = t
            if t > span[1]:
                span[1] = t
        if record["kind"] == "session":
            self.info[sid] = record

    def clear(self) -> None:
        self.span.clear()
        self.info.clear()


class Batch:
    """Rows for one transaction, grouped by insert statement, with their sessions.

    ``known``: session id -> model identities of the sessions seen so far (shared by the
    batches of one recorder or import). A record whose session is not known yet is written
    with its own model and its session listed in ``unresolved``, for
    :meth:`lkmetrics.store.db.Database.resolve_models` to correct once the session is known.
    """

    def __init__(self, known: dict[str, SessionModels] | None = None) -> None:
        self.groups: dict[str, list[Row]] = {}
        self.sessions = SessionTracker()
        self.size = 0
        self.known: dict[str, SessionModels] = {} if known is None else known
        self.unresolved: set[str] = set()

    def add(self, record: Record, text: str | None = None) -> None:
        if text is not None:  # an import: its line is kept exactly, unless it holds a secret
            if redact(text) != text:
                record, text = redact_value(record), None
        else:
            record = redact_value(record)
        sid = record["session_id"]
        kind = record["kind"]
        if kind == "session":
            self.known[sid] = session_models(record)
        models = self.known.get(sid)
        if models is None and kind in MODEL_KINDS:
            self.unresolved.add(sid)
        sql, row = row_of(record, text, models)
        group = self.groups.get(sql)
        if group is None:
            group = self.groups[sql] = []
        group.append(row)
        self.sessions.add(record)
        self.size += 1

