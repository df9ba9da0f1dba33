"""Where records go once captured: a queue drained by one thread that feeds the writers, and
the summary each session closes with.

The agent's event loop only ever calls :meth:`Pipeline.put` (a lock-free ``SimpleQueue``
append). Turning LiveKit objects into records, numbering them, summarising, rendering and
writing files all happen on the pipeline's own thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lkmetrics.background import QueueThread
from lkmetrics.errors import Stopped
from lkmetrics.figures import FIGURES, describe, figure_value
from lkmetrics.records import (
    LLM,
    TURN,
    USAGE,
    FigureSummary,
    Record,
    SummaryBody,
    envelope,
    model_label,
    summary_record,
)
from lkmetrics.safety import redact_value

log = logging.getLogger("lkmetrics")


class Writer(Protocol):
    """Receives finished records, in order, on the pipeline thread."""

    def write(self, record: Record) -> None: ...

    def close(self) -> None: ...


class FirstError:
    """A writer keeping the first ``error`` record of a run (a component's failure), so a
    command that sees only its consequence (a turn with no reply) can name the cause first."""

    def __init__(self) -> None:
        self.record: Record | None = None

    def write(self, record: Record) -> None:
        if self.record is None and record.get("kind") == "error":
            self.record = record

    def close(self) -> None:
        pass

    def explain(self, consequence: str) -> str:
        """``consequence`` ("timed out after 20s (no reply)") after the cause, when known:
        "llm_error from openai/x: APIStatusError: 401 ...; then timed out after 20s"."""
        r = self.record
        if r is None:
            return consequence
        source = f" from {r['source']}" if r.get("source") else ""
        return f"{r.get('error_type')}{source}: {r.get('message')}; then {consequence}"


class KeptOpen:
    """A writer shared by several pipelines (a bench's runs): each passes records on, and
    closing one pipeline does not close it; its owner does."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def write(self, record: Record) -> None:
        self.writer.write(record)

    def close(self) -> None:
        pass


# A converter turns a raw item captured on the loop into a record body (without seq/time),
# or None to drop it. Items that are already records (dicts) pass through unchanged.
Converter = Callable[[Any], "Record | None"]

_END = object()


class Pipeline(QueueThread):
    """The single consumer of captured items. Thread-safe ``put``; ``close`` drains and joins.

    In the process that shows the output (``summarise=True``) a session's end adds its
    ``summary`` record. In a job process, which only relays, ``on_session_end(session_id)``
    is called instead, after everything the session put was written.
    """

    def __init__(self, writers: Sequence[Writer], *, summarise: bool = True,
                 on_session_end: Callable[[str], None] | None = None) -> None:
        self._writers = list(writers)
        self._summarise = summarise
        self._on_session_end = on_session_end
        self._seq: dict[str, int] = {}
        self._summaries: dict[str, SummaryBuilder] = {}
        self._ended: set[str] = set()
        self.errors: list[str] = []
        super().__init__("lkmetrics-pipeline")

    # -- producer side (any thread, including the agent's event loop) --

    def put(self, session_id: str, item: Any, convert: Converter | None = None) -> None:
        """Enqueue a captured item. O(1), never blocks, never does I/O."""
        self.enqueue((session_id, item, convert, time.time()))

    def end_session(self, session_id: str) -> None:
        """Ask for the session's summary record once everything before it is written."""
        self.enqueue((session_id, _END, None, time.time()))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far has been written. Call off the event loop."""
        done = threading.Event()
        self.enqueue(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Summarise open sessions, flush and close every writer. Idempotent."""
        if not self.stop(timeout):
            return
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.close()

    # -- consumer side --

    def run(self) -> None:
        while True:
            try:
                item = self.get()
            except Stopped:
                for session_id in list(self._summaries):
                    self._finish(session_id)
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._handle(*item)
            except Exception as e:  # a bad record must not stop the stream
                self._error(f"{type(e).__name__}: {e}")

    def _error(self, message: str) -> None:
        self.errors.append(message)
        log.warning("could not write a record: %s", message)

    def _handle(self, session_id: str, item: Any, convert: Converter | None, t: float) -> None:
        if item is _END:
            self._finish(session_id)
            return
        record = convert(item) if convert is not None else item
        if record is None:
            return
        record = redact_value(record)  # no known secret reaches a writer (terminal, file, store)
        if "seq" not in record:
            record = self._number(session_id, record, t)
        else:  # numbered elsewhere (a job process): keep counting from there
            self._seq[session_id] = max(self._seq.get(session_id, 0), int(record["seq"]))
        if self._summarise and session_id not in self._ended:
            self._summaries.setdefault(session_id, SummaryBuilder()).add(record)
        self._emit(record)

    def _number(self, session_id: str, body: Record, t: float) -> Record:
        seq = self._seq.get(session_id, 0) + 1
        self._seq[session_id] = seq
        return envelope(session_id, seq, t, body)

    def _finish(self, session_id: str) -> None:
        if session_id in self._ended:
            return
        self._ended.add(session_id)
        if not self._summarise:  # a job process: the CLI process summarises
            if self._on_session_end is not None:
                self._on_session_end(session_id)
            return
        builder = self._summaries.pop(session_id, None) or SummaryBuilder()
        self._emit(self._number(session_id, builder.summary(), time.time()))

    def _emit(self, record: Record) -> None:
        for w in self._writers:
            try:
                w.write(record)
            except Exception as e:
                self._error(f"{type(w).__name__}: {type(e).__name__}: {e}")


class SummaryBuilder:
    """Folds records into the figures of a session summary, one record at a time.

    The summary's ``cost`` (lkmetrics.cost) prices the session's usage with the prices of
    ``LKMETRICS_PRICES`` and the shipped ones; it holds each turn's cost by its ``seq``,
    since a turn's reply usage may be reported after its turn record.
    """

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {f.name: [] for f in FIGURES}
        self.tokens = {"prompt": 0, "completion": 0, "total": 0}
        self.usage: list[dict[str, Any]] = []
        self.records = 0
        self.turns = 0
        self.by_model: dict[str, dict[str, int]] = {}
        self._cost: Any = None  # a lkmetrics.cost.compute.CostTracker, made on first record
        self._cost_error: str | None = None

    def _add_cost(self, record: Record) -> None:
        if self._cost is None and self._cost_error is None:
            from lkmetrics.cost.compute import CostTracker
            from lkmetrics.cost.prices import default_book
            from lkmetrics.errors import LkmetricsError

            try:
                self._cost = CostTracker(default_book())
            except LkmetricsError as e:
                self._cost_error = str(e)
        if self._cost is not None:
            self._cost.add(record)

    def add(self, record: Record) -> None:
        self.records += 1
        self._add_cost(record)
        kind = record.get("kind")
        for figure in FIGURES:
            if figure.kind == kind:
                value = figure_value(figure, record)
                if value is not None:
                    self.values[figure.name].append(value)
        if kind == LLM:
            self.tokens["prompt"] += int(record.get("prompt_tokens") or 0)
            self.tokens["completion"] += int(record.get("completion_tokens") or 0)
            self.tokens["total"] += int(record.get("total_tokens") or 0)
            label = model_label(record) or str(record.get("label", "llm"))
            counts = self.by_model.setdefault(label, {"requests": 0, "prompt_tokens": 0,
                                                       "completion_tokens": 0})
            counts["requests"] += 1
            counts["prompt_tokens"] += int(record.get("prompt_tokens") or 0)
            counts["completion_tokens"] += int(record.get("completion_tokens") or 0)
        elif kind == TURN:
            self.turns += 1
        elif kind == USAGE:
            self.usage = list(record.get("usage") or [])

    def summary(self) -> Record:
        """The closing ``summary`` record body (the pipeline adds the envelope)."""
        figures: dict[str, FigureSummary] = {}
        for name, values in self.values.items():
            stats = describe(values)
            figures[name] = {"count": int(stats["count"] or 0), "mean": stats["mean"],
                             "p50": stats["p50"], "p95": stats["p95"], "max": stats["max"],
                             "sum": float(sum(values))}
        body: SummaryBody = {"kind": "summary", "records": self.records, "turns": self.turns,
                             "figures": figures, "tokens": dict(self.tokens),
                             "usage": self.usage,
                             "cost": (self._cost.result().as_dict() if self._cost is not None
                                      else {"error": self._cost_error})}
        return summary_record(body)
