"""``bench voice``'s core: the STT x LLM x TTS matrix and concurrencies, the figures of each run,
the ranking, the load curve's knee, the JSON document and the verdict. No livekit import.

A run is one combination at one concurrency: that many simulated callers, each its own
AgentSession with its own paced microphone and speaker, say the same utterances ``repeat``
times. Every caller is a session in the store; all the sessions of one bench share its
``bench_id`` (``lkmetrics report --bench ID``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lkmetrics.analysis.budgets import Budget, BudgetResult, check_budgets, parse_budget
from lkmetrics.analysis.report import FigureRow, Report
from lkmetrics.bench.shared import MAX_COUNT, parse_concurrency, raise_failures
from lkmetrics.bench.voice.sweep import Sweep, parse_sweep, rows
from lkmetrics.config.defaults import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_LLM,
    DEFAULT_STT,
    DEFAULT_TTS,
    DEFAULT_VOICE,
)
from lkmetrics.config.options import AgentOptions
from lkmetrics.config.prepare import make_settings
from lkmetrics.config.settings import AgentSettings
from lkmetrics.errors import UsageError
from lkmetrics.figures import (
    BENCH_VOICE_FIGURES,
    FIGURES,
    PREMATURE_EOT,
    SPREAD_STATS,
    Figure,
    describe,
    figure_value,
)
from lkmetrics.records import Record
from lkmetrics.simulate.script import BUILTIN_SCRIPT, Behaviour

if TYPE_CHECKING:
    from lkmetrics.simulate.scenario import ScenarioTurn

KIND = "bench_voice"
SCHEMA = 1
COMMAND = "bench voice"
OWN = "agent's own"  # --agent: a stage the command line does not replace
PAUSE = 0.5  # seconds a caller waits after a reply before its next utterance
STATS = SPREAD_STATS

# the run's figures: JSON key (docs/bench.md) -> the turn record field it is read from
# (LiveKit's per-turn report, and the caller's own heard latency) and the registry figure it
# is, whose name the table shows
TURN_FIGURES: dict[str, tuple[str, str]] = {
    "e2e": ("e2e_latency", "e2e"),
    "heard": ("heard_latency", "heard"),
    "eou_delay": ("end_of_turn_delay", "eou.delay"),
    "transcription_delay": ("transcription_delay", "eou.transcription_delay"),
    "llm_ttft": ("llm_node_ttft", "llm.ttft"),
    "tts_ttfb": ("tts_node_ttfb", "tts.ttfb"),
}


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceConfig:
    """Everything a voice bench needs, validated. ``stacks``: one AgentSettings per
    combination, in the order of the matrix (STT outermost, then LLM, then TTS)."""

    stacks: list[AgentSettings]
    say: tuple[str, ...]
    repeat: int
    concurrency: list[int]
    timeout: float
    budgets: list[Budget] = field(default_factory=list)
    pause: float = PAUSE
    agent: str | None = None  # --agent TARGET: the user's agent instead of the built-in one
    behaviour: Behaviour = Behaviour()  # --barge-in, --backchannel, --pause-mid
    sweep: Sweep | None = None  # --sweep NAME=V1,V2,...: one run per value
    scenario: tuple[ScenarioTurn, ...] | None = None  # --scenario FILE's turns, instead of --say

    @property
    def lines(self) -> int:
        """The lines each caller says once (before --repeat)."""
        if self.scenario is not None:
            return len(self.scenario)
        return len(self.say) or len(BUILTIN_SCRIPT)


def _distinct(values: Sequence[str] | None, default: str) -> list[str]:
    out: list[str] = []
    for v in values or [default]:
        if v not in out:
            out.append(v)
    return out


def make_config(*, stt: Sequence[str] | None, llm: Sequence[str] | None,
                tts: Sequence[str] | None, local: bool = False, voice: str = DEFAULT_VOICE,
                instructions: str = DEFAULT_INSTRUCTIONS, greet: bool = False,
                llm_base_url: str | None = None, say: Sequence[str] = (), repeat: int = 1,
                concurrency: Sequence[str] | None = None, timeout: float = 60.0,
                fail_over: Sequence[str] | None = None, agent: str | None = None,
                typed: frozenset[str] = frozenset(), behaviour: Behaviour | None = None,
                scenario: Path | None = None, sweep: str | None = None) -> VoiceConfig:
    """Validate the command line (no livekit import, no credentials checked yet).

    ``--local`` makes 'local' the default of every stage not given. ``agent``: --agent
    TARGET, whose own STT/LLM/TTS are used except the stages the ``typed`` options replace
    (as in simulate: --instructions or --greet with it are refused)."""
    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1 (got {repeat}).")
    if repeat > MAX_COUNT:
        raise UsageError(f"--repeat must be at most {MAX_COUNT:,} (got {repeat}).")
    if timeout <= 0:
        raise UsageError(f"--timeout must be positive (got {timeout:g}).")
    from lkmetrics.simulate.scenario import checked_script

    behaviour = behaviour or Behaviour()
    swept = parse_sweep(sweep)
    if swept is not None and agent is not None:
        raise UsageError("--sweep sets the endpointing of lkmetrics' own agent's sessions; "
                         "with --agent your code builds the AgentSession: drop --sweep, or "
                         "set it in your agent.")
    turns = checked_script(scenario, say, repeat, behaviour, repeat_flag=None)
    defaults = ("local",) * 3 if local else (DEFAULT_STT, DEFAULT_LLM, DEFAULT_TTS)
    stacks: list[AgentSettings] = []
    seen: set[tuple[str | None, str, str | None]] = set()
    for s in _distinct(stt, defaults[0]):
        for m in _distinct(llm, defaults[1]):
            for t in _distinct(tts, defaults[2]):
                settings = make_settings(COMMAND, AgentOptions(
                    stt=s, llm=m, tts=t, voice=voice, instructions=instructions, greet=greet,
                    llm_base_url=None if m.strip().lower() == "local" else llm_base_url,
                    agent=agent, typed=typed))
                key = (settings.stt, settings.llm, settings.tts)
                if key in seen:
                    continue
                seen.add(key)
                if settings.stt is None:
                    raise UsageError("--stt none: a simulated caller speaks, so bench voice "
                                     "needs an STT.")
                if settings.tts is None:
                    raise UsageError("--tts none: heard latency needs the agent's audio, so "
                                     "bench voice needs a TTS.")
                if settings.uses_local():
                    settings.turn_detection = "vad"  # offline: no turn-detector model
                stacks.append(settings)
    budgets = [parse_budget(spec) for spec in fail_over or []]
    return VoiceConfig(stacks=stacks, say=tuple(say), repeat=repeat,
                       concurrency=parse_concurrency(concurrency), timeout=timeout,
                       budgets=budgets, agent=agent, behaviour=behaviour,
                       scenario=tuple(turns) if turns is not None else None, sweep=swept)


def stack_label(settings: AgentSettings) -> str:
    """STT | LLM | TTS of a combination (with --agent, "agent's own" for a stage not
    replaced)."""
    parts = []
    for stage in ("stt", "llm", "tts"):
        if settings.agent is not None and stage not in settings.replace:
            parts.append(OWN)
        else:
            parts.append(getattr(settings, stage) or "none")
    return " | ".join(parts)


# -- results ----------------------------------------------------------------------------------


@dataclass
class VoiceRun:
    """One combination at one concurrency: what its callers measured and LiveKit recorded."""

    stt: str | None
    llm: str
    tts: str | None
    concurrency: int
    planned: int  # turns: callers x utterances x repeat
    errors_seen: list[str]  # one message per failed turn (or per failed caller's turn)
    records: list[Record]  # the turn and component records of every caller
    wall_s: float
    session_ids: list[str] = field(default_factory=list)
    turns_ok: int = 0
    agent: str | None = None  # --agent TARGET as given, and what it resolved to (module:NAME)
    agent_target: str | None = None
    sweep: tuple[str, float] | None = None  # --sweep: the setting and its value in this run

    @property
    def combination(self) -> str:
        return f"{self.stt or 'none'} | {self.llm} | {self.tts or 'none'}"

    @property
    def label(self) -> str:
        swept = f" [{self.sweep[0]}={self.sweep[1]:g}]" if self.sweep else ""
        return f"{self.combination} @ {self.concurrency}{swept}"

    @property
    def errors(self) -> int:
        """Turns that failed or were never run (a caller stops at its first failure)."""
        return self.planned - self.turns_ok

    @property
    def first_error(self) -> str | None:
        return self.errors_seen[0] if self.errors_seen else None

    @property
    def turns(self) -> list[Record]:
        return [r for r in self.records if r.get("kind") == "turn"]

    def values(self, name: str) -> list[float]:
        key = TURN_FIGURES[name][0]
        out: list[float] = []
        for t in self.turns:
            v = t.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
                out.append(float(v))
        return out

    def stats(self, name: str) -> dict[str, float | None]:
        d = describe(self.values(name))
        return {k: None if d[k] is None else float(d[k] or 0.0) for k in STATS}

    def figure(self, figure: Figure) -> dict[str, float | int | None]:
        """A registry figure over this run's records: count, sum and describe()'s stats."""
        values = [v for rec in self.records if (v := figure_value(figure, rec)) is not None]
        return {**describe(values), "sum": sum(values) if values else None}

    def conversation(self) -> dict[str, dict[str, float | int | None]]:
        """bench voice's conversation figures (the registry's), by name: those measured."""
        out = {}
        for figure in BENCH_VOICE_FIGURES:
            stats = self.figure(figure)
            if stats["count"]:
                out[figure.name] = stats
        return out

    def eot_total(self) -> int | None:
        """Premature ends of turn in this run (None: not measured, no --pause-mid)."""
        stats = self.figure(PREMATURE_EOT)
        return int(stats["sum"] or 0) if stats["count"] else None

    def eot_rate(self) -> float | None:
        """Premature ends of turn per line answered (None: not measured, or none answered)."""
        total = self.eot_total()
        if total is None or not self.turns_ok:
            return None
        return total / self.turns_ok

    def to_json(self, budgets_ok: bool | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "stt": self.stt, "llm": self.llm, "tts": self.tts,
            "concurrency": self.concurrency, "turns": self.planned,
            "errors": self.errors, "first_error": self.first_error,
        }
        for name in TURN_FIGURES:
            body[name] = self.stats(name)
        body["conversation"] = self.conversation()
        if self.sweep is not None:
            body["sweep"] = {"name": self.sweep[0], "value": self.sweep[1]}
        body.update({"wall_s": self.wall_s, "session_ids": list(self.session_ids),
                     "within_budgets": budgets_ok})
        return body


def p50(run: VoiceRun, name: str) -> float | None:
    return run.stats(name)["p50"]


# -- budgets, ranking and the knee ------------------------------------------------------------


def budget_report(runs: Sequence[VoiceRun]) -> Report:
    """Every figure of the runs' records, one group per run, as ``report`` has them."""
    rows: list[FigureRow] = []
    for run in runs:
        for figure in FIGURES:
            values = [v for rec in run.records if (v := figure_value(figure, rec)) is not None]
            if values:
                rows.append(FigureRow(run.label, figure, describe(values)))
    return Report(COMMAND, "run", rows)


def check(runs: Sequence[VoiceRun], budgets: Sequence[Budget]) -> list[BudgetResult]:
    return check_budgets(budget_report(runs), budgets) if budgets else []


def passed(run: VoiceRun, checked: Sequence[BudgetResult]) -> bool:
    """No failed turn and no broken budget in this run."""
    return run.errors == 0 and not any(r.broken and r.group == run.label for r in checked)


def ranked(runs: Sequence[VoiceRun]) -> list[str]:
    """The combinations, fastest first: by e2e p50 at their lowest concurrency (runs with
    failed turns, or without an e2e figure, last)."""
    first: dict[str, VoiceRun] = {}
    for run in runs:
        if run.combination not in first or run.concurrency < first[run.combination].concurrency:
            first[run.combination] = run

    def key(combination: str) -> tuple[int, float]:
        run = first[combination]
        e2e = p50(run, "e2e")
        return (1 if run.errors or e2e is None else 0, e2e if e2e is not None else 0.0)

    return sorted(first, key=key)


def knee(runs: Sequence[VoiceRun], checked: Sequence[BudgetResult]) -> dict[str, int | None]:
    """Per combination, the highest concurrency up to which every run passed (no failed turn,
    every budget held); None when even the lowest concurrency did not."""
    out: dict[str, int | None] = {}
    for combination in ranked(runs):
        best: int | None = None
        for run in sorted((r for r in runs if r.combination == combination),
                          key=lambda r: r.concurrency):
            if not passed(run, checked):
                break
            best = run.concurrency
        out[combination] = best
    return out


def document(bench_id: str, runs: Sequence[VoiceRun], checked: Sequence[BudgetResult]
             ) -> dict[str, Any]:
    """The one JSON document of ``--format json`` (times in seconds)."""
    order = ranked(runs)
    knees = knee(runs, checked)
    budgets = bool(checked)
    ordered = sorted(runs, key=lambda r: (order.index(r.combination), r.concurrency))
    combos = []
    for rank, combination in enumerate(order, 1):
        run = next(r for r in runs if r.combination == combination)
        combos.append({"rank": rank, "stt": run.stt, "llm": run.llm, "tts": run.tts,
                       "max_concurrency_passed": knees[combination]})
    doc: dict[str, Any] = {"kind": KIND, "schema": SCHEMA, "bench_id": bench_id,
                           **agent_of(runs),
                           "runs": [r.to_json(passed(r, checked) if budgets else None)
                                    for r in ordered],
                           "combinations": combos}
    swept = rows(runs)
    if swept:
        doc["sweep"] = {"name": swept[0]["name"], "rows": swept}
    return doc


def agent_of(runs: Sequence[VoiceRun]) -> dict[str, str | None]:
    """The agent the runs measured: ``agent`` (--agent TARGET as given) and ``agent_target``
    (module:NAME), both None for lkmetrics' built-in agent."""
    for run in runs:
        if run.agent is not None:
            return {"agent": run.agent, "agent_target": run.agent_target}
    return {"agent": None, "agent_target": None}


def verdict(runs: Sequence[VoiceRun], checked: Sequence[BudgetResult]) -> None:
    """Raise BenchFailed naming the failed turns of each run and every broken budget."""
    raise_failures([f"{r.errors} of {r.planned} turns failed ({r.label}): "
                    f"{(r.first_error or 'not run').rstrip('.')}" for r in runs if r.errors],
                   checked)
