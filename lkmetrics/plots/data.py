"""What the charts show, read from the store: per-turn stages, each figure's values, TTFT and
e2e over time, tokens per LLM request, and the summary report. No drawing here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lkmetrics.analysis.report import Report, Selection, summarise
from lkmetrics.figures import FIGURES, percentile
from lkmetrics.records import STAGE_NAMES, turn_stages
from lkmetrics.store import Store

MAX_POINTS = 2000  # the most recent turns / requests a chart draws


@dataclass(frozen=True)
class TurnStages:
    """One turn: where it happened, its stage times (records.STAGE_NAMES) and e2e."""

    label: str
    time: float
    stages: dict[str, float]
    e2e: float | None


@dataclass(frozen=True)
class SessionInfo:
    """A session the charts cover, for the report's header."""

    id: str
    started: float | None
    ended: float | None
    command: str | None
    models: tuple[str, ...]  # its STT, LLM and TTS, those it recorded
    agent: str | None  # module:NAME of a user agent (--agent), else None
    status: str | None


@dataclass
class PlotData:
    description: str
    sessions: list[SessionInfo] = field(default_factory=list)
    turns: list[TurnStages] = field(default_factory=list)
    figures: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # name -> group
    ttft: list[tuple[float, float]] = field(default_factory=list)  # (time, seconds)
    tokens: list[tuple[float, int, int]] = field(default_factory=list)  # (time, prompt, compl.)
    report: Report | None = None

    @property
    def e2e(self) -> list[tuple[float, float]]:
        return [(t.time, t.e2e) for t in self.turns if t.e2e is not None]


def stages_of(turn: dict[str, object]) -> dict[str, float]:
    """A turn's named stages as the live view draws them (records.turn_stages)."""
    found = turn.get("stages")
    stages: dict[str, object] = (dict(found) if isinstance(found, dict)
                                 else dict(turn_stages(turn)))
    out: dict[str, float] = {}
    for name in STAGE_NAMES:
        v = stages.get(name)
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0.0005:
            out[name] = float(v)
    return out


def quantiles(values: list[float]) -> tuple[float | None, float | None]:
    """p50 and p95 of sorted values (the report's percentile definition)."""
    if not values:
        return None, None
    return percentile(values, 50), percentile(values, 95)


def load(store: Store, selection: Selection, by: str | None = None) -> PlotData:
    """Everything the charts of ``selection`` need (the last MAX_POINTS turns and requests)."""
    scope = selection.scope
    where, params = scope.where()
    data = PlotData(selection.description)
    with store.errors():
        rows = store.conn.execute(
            f"SELECT session_id, seq, time, json FROM records WHERE kind = 'turn'{where} "
            f"ORDER BY time DESC, seq DESC LIMIT {MAX_POINTS}", params).fetchall()
        for number, (sid, _seq, t, text) in enumerate(reversed(rows), 1):
            try:
                turn = json.loads(text)
            except ValueError:
                continue
            e2e = turn.get("e2e_latency")
            single = scope.session_ids is not None and len(scope.session_ids) == 1
            label = f"{turn.get('turn', number)}" if single else f"{sid}:{turn.get('turn', '')}"
            data.turns.append(TurnStages(label, float(t), stages_of(turn),
                                         float(e2e) if isinstance(e2e, int | float) else None))
        llm = store.conn.execute(
            f"SELECT time, llm_ttft, prompt_tokens, completion_tokens FROM records "
            f"WHERE kind = 'llm'{where} ORDER BY time DESC LIMIT {MAX_POINTS}", params
        ).fetchall()
    for t, ttft, prompt, completion in reversed(llm):
        if ttft is not None:
            data.ttft.append((float(t), float(ttft)))
        data.tokens.append((float(t), int(prompt or 0), int(completion or 0)))
    data.figures = store.figures(FIGURES, scope, by)
    data.report = summarise(store, selection, by)
    data.sessions = sessions_of(store, selection)
    return data


def sessions_of(store: Store, selection: Selection) -> list[SessionInfo]:
    """The sessions ``selection`` covers, oldest first, with their models and agent."""
    from lkmetrics.analysis.report import statuses
    from lkmetrics.store.agents import agent_labels

    ids = list(statuses(store, selection))
    agents = agent_labels(store, ids)
    out = []
    for sid in ids:
        row = store.session(sid)
        models = tuple(m for m in (row.stt, row.llm, row.tts) if m)
        out.append(SessionInfo(sid, row.started, row.ended, row.command, models,
                               agents.get(sid), row.exit_status))
    return sorted(out, key=lambda s: (s.started or 0.0, s.id))
