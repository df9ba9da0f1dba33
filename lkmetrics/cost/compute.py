"""What a session and each of its turns cost, from its cumulative usage records and prices.

LiveKit's usage records are cumulative per session: each holds, per model, every token,
second of audio and character used so far. A session costs what its last usage record
prices at. A turn costs the increase of that cumulative cost assigned to it, reading the
session's records in ``seq`` order:

* STT usage is the caller's speech, so an STT increase goes to the next turn record;
* LLM and TTS usage is the reply, which LiveKit may report just after the turn record: an
  LLM or TTS increase goes to the last turn record when no user-side record (``eou`` or
  ``stt``) came after it, else to the next turn record.

Usage after the last turn record that no turn claims counts for the session only, so the
turns' costs add up to at most the session's. A model without a known price makes the part
it belongs to (llm, stt or tts) and the total unknown (None) wherever its usage grew; it is
named in ``unknown``. A model lkmetrics runs locally (``--local``) costs 0; an endpoint on
loopback is priced like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lkmetrics.cost.prices import KINDS, Price, PriceBook, usage_kind
from lkmetrics.records import stage_identity, usage_identity

Record = dict[str, Any]


def model_label(entry: Mapping[str, Any]) -> str:
    """``provider/model`` of a usage entry (LiveKit Inference's model already has the slash)."""
    provider = str(entry.get("provider") or "")
    model = str(entry.get("model") or "")
    if "/" in model or not provider:
        return model or provider or "?"
    return f"{provider}/{model}" if model else provider


@dataclass
class Parts:
    """USD per stage; None when a model of that stage has no known price."""

    llm: float | None = 0.0
    stt: float | None = 0.0
    tts: float | None = 0.0

    @property
    def total(self) -> float | None:
        values = (self.llm, self.stt, self.tts)
        return None if any(v is None for v in values) else float(sum(v for v in values if v))

    def add(self, kind: str, value: float | None) -> None:
        current = getattr(self, kind)
        setattr(self, kind, None if current is None or value is None else current + value)

    def as_dict(self) -> dict[str, float | None]:
        return {"total": self.total, "llm": self.llm, "stt": self.stt, "tts": self.tts}


@dataclass
class ModelCost:
    kind: str
    model: str
    cost: float | None
    price: Price | None
    usage: dict[str, Any]


@dataclass
class TurnCost:
    seq: int
    turn: int | None
    parts: Parts


@dataclass
class SessionCost:
    session_id: str
    parts: Parts
    models: list[ModelCost]
    turns: list[TurnCost]
    duration: float | None  # seconds from the first to the last record

    @property
    def unknown(self) -> list[str]:
        return sorted({m.model for m in self.models if m.cost is None})

    @property
    def per_minute(self) -> float | None:
        total = self.parts.total
        if total is None or not self.duration:
            return None
        return total / (self.duration / 60)

    def as_dict(self) -> dict[str, Any]:
        """The ``cost`` of a summary record: totals, parts, per model and per turn."""
        return {
            "currency": "USD",
            **self.parts.as_dict(),
            "per_minute": self.per_minute,
            "unknown": self.unknown,
            "models": [{"type": m.kind, "model": m.model, "cost": m.cost,
                        "source": m.price.source if m.price else None} for m in self.models],
            "turns": [{"seq": t.seq, "turn": t.turn, **t.parts.as_dict()} for t in self.turns],
        }


class CostTracker:
    """Folds one session's records, in ``seq`` order, into its cost."""

    def __init__(self, book: PriceBook, session_id: str = "") -> None:
        self.book = book
        self.session_id = session_id
        self.local_kinds: set[str] = set()
        self._prices: dict[tuple[str, str, str], Price | None] = {}
        self._last: dict[tuple[str, str], dict[str, Any]] = {}
        self._cost: dict[tuple[str, str], float | None] = {}
        self._pending = Parts()
        self._turns: list[TurnCost] = []
        self._open: TurnCost | None = None  # the turn that still takes reply usage
        self._first: float | None = None
        self._end: float | None = None
        self._stages: dict[str, str | None] = {}  # the session's model identities

    def add(self, record: Mapping[str, Any]) -> None:
        t = record.get("time")
        if isinstance(t, int | float) and not isinstance(t, bool):
            self._first = t if self._first is None else min(self._first, t)
            self._end = t if self._end is None else max(self._end, t)
        kind = record.get("kind")
        if kind == "session":
            self._session(record)
        elif kind == "usage":
            self._usage(record.get("usage") or [])
        elif kind == "turn":
            turn = record.get("turn")
            tc = TurnCost(int(record.get("seq") or 0), turn if isinstance(turn, int) else None,
                          self._pending)
            self._pending = Parts()
            self._turns.append(tc)
            self._open = tc
        elif kind in ("eou", "stt"):
            self._open = None

    def _session(self, record: Mapping[str, Any]) -> None:
        self._stages = {stage: stage_identity(record, stage) for stage in ("llm", "stt", "tts")}
        for k in KINDS:  # only lkmetrics' own local models are free, not any loopback URL
            if record.get(k) == "local":
                self.local_kinds.add(k)

    def price(self, kind: str, provider: str, model: str) -> Price | None:
        key = (kind, provider, model)
        if key not in self._prices:
            if kind in self.local_kinds:
                self._prices[key] = Price(kind, model_label({"provider": provider,
                                                               "model": model}),
                                          {}, "runs locally", "", local=True)
            else:
                self._prices[key] = self.book.lookup(kind, provider, model)
        return self._prices[key]

    def _usage(self, usage: Iterable[Any]) -> None:
        for entry in usage:
            if not isinstance(entry, dict):
                continue
            kind = usage_kind(entry)
            if kind is None:
                continue
            # what was priced: the entry's own provider/model (no port); a local stage under
            # its session's identity (local/smollm2-135m-instruct)
            stages = self._stages if kind in self.local_kinds else None
            key = (kind, usage_identity(entry, stages))
            if self._last.get(key) == entry:
                continue
            self._last[key] = entry
            price = self.price(kind, str(entry.get("provider") or ""),
                               str(entry.get("model") or ""))
            new = price.cost(entry) if price is not None else None
            old = self._cost.get(key, 0.0)
            self._cost[key] = new
            delta = None if new is None or old is None else new - old
            target = self._open if kind != "stt" and self._open is not None else None
            (target.parts if target is not None else self._pending).add(kind, delta)

    def result(self) -> SessionCost:
        parts = Parts()
        models = []
        for (kind, label), cost in sorted(self._cost.items()):
            parts.add(kind, cost)
            entry = self._last[(kind, label)]
            price = self.price(kind, str(entry.get("provider") or ""),
                               str(entry.get("model") or ""))
            models.append(ModelCost(kind, label, cost, price, entry))
        duration = (self._end - self._first) if self._first is not None and self._end else None
        return SessionCost(self.session_id, parts, models, list(self._turns), duration)


def session_cost(records: Iterable[Mapping[str, Any]], book: PriceBook,
                 session_id: str = "") -> SessionCost:
    """The cost of one session from its records (any order: they are sorted by seq)."""
    tracker = CostTracker(book, session_id)
    for r in sorted(records, key=lambda r: int(r.get("seq") or 0)):
        tracker.add(r)
    return tracker.result()


@dataclass
class CostSummary:
    """Costs over many sessions: per session, per model, and the turn and session figures."""

    sessions: list[SessionCost] = field(default_factory=list)
    # each turn's total cost (known ones), sorted; per session when asked for
    turn_values: list[float] = field(default_factory=list)
    session_turn_values: dict[str, list[float]] = field(default_factory=dict)

    @property
    def session_values(self) -> list[float]:
        return [s.parts.total for s in self.sessions if s.parts.total is not None]

    @property
    def unknown(self) -> list[str]:
        return sorted({m for s in self.sessions for m in s.unknown})

    def totals(self) -> Parts:
        parts = Parts()
        for s in self.sessions:
            for k in KINDS:
                parts.add(k, getattr(s.parts, k))
        return parts

    def per_minute(self) -> float | None:
        total = self.totals().total
        minutes = sum(s.duration or 0.0 for s in self.sessions) / 60
        return None if total is None or not minutes else total / minutes

    def prices_used(self) -> list[Price]:
        """Every price a session in here was costed with (each once)."""
        found: dict[tuple[str, str], Price] = {}
        for s in self.sessions:
            for m in s.models:
                if m.price is not None:
                    found.setdefault((m.price.kind, m.price.model), m.price)
        return list(found.values())

    def by_model(self) -> list[dict[str, Any]]:
        """Per (type, model): sessions, cost (None when unknown) and the price's source."""
        acc: dict[tuple[str, str], dict[str, Any]] = {}
        for s in self.sessions:
            for m in s.models:
                row = acc.setdefault((m.kind, m.model), {
                    "type": m.kind, "model": m.model, "sessions": 0, "cost": 0.0,
                    "source": m.price.source if m.price else None,
                    "date": m.price.date if m.price else None})
                row["sessions"] += 1
                row["cost"] = None if row["cost"] is None or m.cost is None else (
                    row["cost"] + m.cost)
        return [acc[k] for k in sorted(acc)]


class LiveTurnCost:
    """The cost of each turn as its record is written: what the session's cumulative usage cost
    more than at the previous turn record (LiveKit reports a reply's LLM and TTS usage before
    the reply's turn). Runs on the pipeline thread; a bad prices file gives no turn costs."""

    def __init__(self) -> None:
        self._tracker: CostTracker | None = None
        self._failed = False
        self._last = Parts()

    def _get(self) -> CostTracker | None:
        if self._tracker is None and not self._failed:
            from lkmetrics.cost.prices import default_book
            from lkmetrics.errors import LkmetricsError

            try:
                self._tracker = CostTracker(default_book())
            except LkmetricsError:
                self._failed = True  # the summary's cost says what is wrong
        return self._tracker

    def add(self, record: Mapping[str, Any]) -> None:
        """A ``session`` or ``usage`` body (the only kinds the cost needs)."""
        tracker = self._get()
        if tracker is not None:
            tracker.add(record)

    def turn(self) -> dict[str, float | None] | None:
        """USD since the previous turn, per stage and in total (None: no price known)."""
        tracker = self._get()
        if tracker is None:
            return None
        now = tracker.result().parts
        delta = Parts()
        for kind in ("llm", "stt", "tts"):
            a, b = getattr(now, kind), getattr(self._last, kind)
            setattr(delta, kind, None if a is None or b is None else max(0.0, a - b))
        self._last = now
        return delta.as_dict()
