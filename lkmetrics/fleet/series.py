"""What the fleet exporters publish: the series, their buckets and labels, and which record
values feed them. Pure: no I/O, no exporter imports; both writers share it.

Labels are ``model`` and ``provider`` only, so a series' cardinality is bounded by the models a
worker runs, never by sessions or rooms. Component records (``llm``, ``stt``, ``tts``) carry
their model in LiveKit's ``metadata``; ``turn``, ``eou`` and ``error`` records carry none and
take the session's LLM, from the ``session`` record of the same ``session_id``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lkmetrics.figures import FIGURES, Figure, figure_value
from lkmetrics.records import Record, model_identity, stage_identity

# voice latency, in seconds: dense where budgets usually sit (0.2-1.5 s)
LATENCY_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0,
)
# OTel's recommended bounds for gen_ai.client.token.usage
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)

UNKNOWN = "unknown"
LABELS = ("model", "provider")
# tool names are the functions an agent declares; past this many, the rest share OTHER_TOOLS
MAX_TOOLS = 64
OTHER_TOOLS = "other"


@dataclass(frozen=True)
class Series:
    """One published figure, as a Prometheus series and as an OTel instrument."""

    key: str
    prom: str  # Prometheus name; a counter's ``_total`` suffix is added by the client
    otel: str  # OTel instrument name (GenAI semantic conventions where one exists)
    unit: str  # UCUM, for OTel: "s", "{token}", ...
    histogram: bool
    help: str
    label: str | None = None  # a third label besides LABELS ("kind" of token, "tool" name)


def _described(key: str, more: str = "") -> str:
    """A figure's series described by the registry: its title, then its lkmetrics name (as
    ``report`` and ``--fail-over`` name it)."""
    figure = next(f for f in FIGURES if f.series == key)
    return f"{figure.title}{': ' + more if more else ''} (lkmetrics figure {figure.name})."


SERIES: tuple[Series, ...] = (
    Series("turn.e2e", "lkmetrics_turn_e2e_latency_seconds", "lkmetrics.turn.e2e_latency", "s",
           True, _described("turn.e2e", "end of user speech to the agent's first audio")),
    Series("turn.heard", "lkmetrics_turn_heard_latency_seconds", "lkmetrics.turn.heard_latency",
           "s", True, _described("turn.heard", "turn records' heard_latency")),
    Series("llm.ttft", "lkmetrics_llm_ttft_seconds", "gen_ai.client.operation.time_to_first_chunk",
           "s", True, _described("llm.ttft")),
    Series("llm.duration", "lkmetrics_llm_duration_seconds", "gen_ai.client.operation.duration",
           "s", True, _described("llm.duration", "its _count is the number of LLM calls")),
    Series("tts.ttfb", "lkmetrics_tts_ttfb_seconds", "lkmetrics.tts.ttfb", "s", True,
           _described("tts.ttfb")),
    Series("stt.duration", "lkmetrics_stt_duration_seconds", "lkmetrics.stt.duration", "s", True,
           _described("stt.duration", "non-streaming recognition")),
    Series("eou.delay", "lkmetrics_eou_delay_seconds", "lkmetrics.eou.delay", "s", True,
           _described("eou.delay", "end of user speech to the end of the turn")),
    Series("eou.transcription_delay", "lkmetrics_transcription_delay_seconds",
           "lkmetrics.eou.transcription_delay", "s", True,
           _described("eou.transcription_delay", "end of user speech to the final transcript")),
    Series("tool.duration", "lkmetrics_tool_duration_seconds", "lkmetrics.tool.duration", "s",
           True, _described("tool.duration", "by tool name and the session's LLM"), "tool"),
    Series("turn.time_to_yield", "lkmetrics_turn_time_to_yield_seconds",
           "lkmetrics.turn.time_to_yield", "s", True, _described("turn.time_to_yield")),
    Series("turn.talk_over", "lkmetrics_turn_talk_over_seconds", "lkmetrics.turn.talk_over",
           "s", True, _described("turn.talk_over", "seconds per turn")),
    Series("stt.wer", "lkmetrics_stt_word_error_rate", "lkmetrics.stt.word_error_rate", "1",
           True, _described("stt.wer", "of each simulated caller's line")),
    Series("turn.backchannels", "lkmetrics_backchannels", "lkmetrics.turn.backchannels",
           "{backchannel}", False, _described("turn.backchannels", "mm-hmm")),
    Series("turn.false_interruptions", "lkmetrics_false_interruptions",
           "lkmetrics.turn.false_interruptions", "{interruption}", False,
           _described("turn.false_interruptions")),
    Series("turn.eot_mispredictions", "lkmetrics_eot_mispredictions",
           "lkmetrics.turn.eot_mispredictions", "{turn}", False,
           _described("turn.eot_mispredictions")),
    Series("llm.tokens", "lkmetrics_llm_tokens", "gen_ai.client.token.usage", "{token}", False,
           "LLM tokens by kind (prompt, completion, cached).", "kind"),
    Series("tts.characters", "lkmetrics_tts_characters", "lkmetrics.tts.characters",
           "{character}", False, "Characters sent to TTS."),
    Series("stt.audio", "lkmetrics_stt_audio_seconds", "lkmetrics.stt.audio_duration", "s", False,
           "Seconds of audio sent to STT."),
    Series("turns", "lkmetrics_turns", "lkmetrics.turns", "{turn}", False,
           "Agent turns (replies), including greetings."),
    Series("sessions", "lkmetrics_sessions", "lkmetrics.sessions", "{session}", False,
           "Agent sessions started."),
    Series("turns.interrupted", "lkmetrics_interrupted_turns", "lkmetrics.turns.interrupted",
           "{turn}", False, "Agent turns interrupted by the user."),
    Series("errors", "lkmetrics_errors", "lkmetrics.errors", "{error}", False,
           "Errors reported by the session (records of kind error)."),
    Series("cost", "lkmetrics_cost_usd", "lkmetrics.cost", "USD", False,
           "What each model's usage cost, in USD (turn records' cost; local models cost 0)."),
)
# counters that exist (at zero) for a model as soon as one of its sessions starts, so a rate
# or a ratio over them reads 0 rather than "no data"
ZERO_ON_SESSION = ("turns", "turns.interrupted", "errors")

# histogram series fed straight from a record field (through figures.figure_value's validity
# rules: LiveKit's -1 "not measured" and a streaming STT's zero duration are skipped)
_FIGURE_SERIES: dict[str, tuple[tuple[str, Figure], ...]] = {
    kind: tuple((f.series, f) for f in FIGURES if f.kind == kind and f.series)
    for kind in {f.kind for f in FIGURES}
}


# kinds that feed no series (vad is the most frequent record of all)
_SILENT = frozenset({"vad", "usage", "eot", "_end"})


def latency_buckets(budgets: Iterable[float] = ()) -> tuple[float, ...]:
    """The voice-latency buckets plus every budget threshold (seconds), sorted, unique."""
    extra = [float(b) for b in budgets if b > 0 and math.isfinite(b)]
    return tuple(sorted(set(LATENCY_BUCKETS) | set(extra)))


def split_label(label: str | None) -> tuple[str, str]:
    """``provider/model`` -> (model, provider), split on the first ``/``."""
    if not label:
        return UNKNOWN, UNKNOWN
    provider, sep, model = label.partition("/")
    if not sep:
        return label, UNKNOWN
    return model or UNKNOWN, provider or UNKNOWN


@dataclass(frozen=True)
class Observation:
    """One value for one series: a histogram sample or a counter increment."""

    key: str
    value: float
    model: str
    provider: str
    token_kind: str | None = None  # only for llm.tokens
    tool: str | None = None  # only for tool.duration


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value < 0 or math.isnan(value):
        return None
    return float(value)


class Observer:
    """Turns records into observations; remembers each open session's LLM for its labels.

    Keeps at most ``max_sessions`` sessions (oldest dropped), so a worker that never sees a
    session's summary cannot grow without bound.
    """

    def __init__(self, max_sessions: int = 4096) -> None:
        self._sessions: OrderedDict[str, Record] = OrderedDict()  # each one's session record
        self._max = max_sessions
        self._tools: set[str] = set()

    def stage_labels(self, session_id: str, stage: str = "llm") -> tuple[str, str]:
        """(model, provider) of a session's stage, by the one model identity."""
        session = self._sessions.get(session_id)
        return split_label(stage_identity(session, stage) or
                           (session or {}).get(stage))

    def session_labels(self, session_id: str) -> tuple[str, str]:
        return self.stage_labels(session_id, "llm")

    def _tool_label(self, record: Record) -> str:
        """The tool's name; bounded: past MAX_TOOLS names, the rest are OTHER_TOOLS."""
        name = record.get("name")
        name = name if isinstance(name, str) and name else UNKNOWN
        if name not in self._tools:
            if len(self._tools) >= MAX_TOOLS:
                return OTHER_TOOLS
            self._tools.add(name)
        return name

    def observe(self, record: Record) -> Iterator[Observation]:
        kind = record.get("kind")
        if kind in _SILENT:
            return
        sid = str(record.get("session_id", ""))
        if kind == "session":
            self._sessions[sid] = record
            self._sessions.move_to_end(sid)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
            yield Observation("sessions", 1.0, *self.session_labels(sid))
            return
        if kind == "summary":
            self._sessions.pop(sid, None)
            return
        if kind in ("llm", "stt", "tts"):
            model, provider = split_label(model_identity(record, self._sessions.get(sid)))
        else:
            model, provider = self.session_labels(sid)
        tool = self._tool_label(record) if kind == "tool" else None
        for key, figure in _FIGURE_SERIES.get(str(kind), ()):
            value = figure_value(figure, record)
            if value is not None:
                yield Observation(key, value, model, provider, tool=tool)
        if kind == "llm":
            for token_kind, field in (("prompt", "prompt_tokens"),
                                      ("completion", "completion_tokens"),
                                      ("cached", "prompt_cached_tokens")):
                n = _number(record.get(field))
                if n is not None:  # zero too: the kind's series exists from the start
                    yield Observation("llm.tokens", n, model, provider, token_kind)
        elif kind == "tts":
            n = _number(record.get("characters_count"))
            if n:
                yield Observation("tts.characters", n, model, provider)
        elif kind == "stt":
            n = _number(record.get("audio_duration"))
            if n:
                yield Observation("stt.audio", n, model, provider)
        elif kind == "turn":
            yield Observation("turns", 1.0, model, provider)
            if record.get("interrupted"):
                yield Observation("turns.interrupted", 1.0, model, provider)
            cost = record.get("cost")
            if isinstance(cost, dict):
                for stage in ("llm", "stt", "tts"):
                    usd = _number(cost.get(stage))
                    if usd:  # a model without a known price adds nothing
                        yield Observation("cost", usd, *self.stage_labels(sid, stage))
        elif kind == "error":
            yield Observation("errors", 1.0, model, provider)
